//! `text_classification`: labelled texts from JSONL or CSV, each tokenized
//! (with an encoder's special tokens, `[CLS] … [SEP]`, or without any for
//! GPT-2), cut to `max_length` tokens and right-padded with the pad id. A
//! GPT-2 classifier reads the last token that is not padding
//! (`GPT2ForSequenceClassification`'s rule), which under the causal mask
//! sees no padding; an encoder's attention skips the pad id: the pad id is
//! the attention mask.

use std::path::Path;

use synth_data::SequenceDataset;

use crate::{TextError, TextTokenizer, read_text};

/// Where a labelled-text file keeps each example's text and label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Columns {
    /// The JSONL key or CSV header of the text.
    pub text: String,
    /// The JSONL key or CSV header of the label (a class number).
    pub label: String,
    /// How a `.csv` file lays its columns out.
    pub csv: CsvLayout,
}

impl Default for Columns {
    /// `text` and `label`, as Hugging Face datasets name them.
    fn default() -> Self {
        Self {
            text: "text".into(),
            label: "label".into(),
            csv: CsvLayout::Header,
        }
    }
}

/// The column layout of a labelled-text CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CsvLayout {
    /// A header row naming the columns (`header`).
    #[default]
    Header,
    /// AG-News's CSVs as distributed (`ag_news`): no header; class 1-4,
    /// title, description. The text is the title, a space and the
    /// description and the label the class − 1, as the Hugging Face
    /// `ag_news` dataset builds its examples.
    AgNews,
}

impl CsvLayout {
    /// The spellings a config or flag takes.
    pub const ALLOWED: &'static str = "\"header\" (a header row naming the columns) or \
         \"ag_news\" (no header; class 1-4, title, description)";

    pub fn name(self) -> &'static str {
        match self {
            CsvLayout::Header => "header",
            CsvLayout::AgNews => "ag_news",
        }
    }
}

impl std::str::FromStr for CsvLayout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "header" => Ok(CsvLayout::Header),
            "ag_news" => Ok(CsvLayout::AgNews),
            other => Err(format!("{other:?}: {}", CsvLayout::ALLOWED)),
        }
    }
}

/// One example: its text, its class and the line it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub text: String,
    pub label: usize,
    pub line: usize,
}

/// The examples of `path`: JSONL (`.jsonl`, one object per line) or CSV
/// (`.csv`, laid out as `columns.csv` says). A label is an integer ≥ 0.
pub fn read_labelled(path: &Path, columns: &Columns) -> Result<Vec<Labelled>, TextError> {
    let text = read_text(path)?;
    let examples = match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl") if columns.csv == CsvLayout::AgNews => {
            return Err(TextError::Format {
                path: path.to_path_buf(),
                message: "a .jsonl file with the CSV layout \"ag_news\": that layout is a \
                          .csv file's (class 1-4, title, description)"
                    .into(),
            });
        }
        Some("jsonl") => jsonl(path, &text, columns)?,
        Some("csv") if columns.csv == CsvLayout::AgNews => ag_news_rows(path, &text)?,
        Some("csv") => csv_rows(path, &text, columns)?,
        other => {
            return Err(TextError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "extension {}: .jsonl (one JSON object per line) or .csv (a header row)",
                    other.map_or_else(|| "none".to_string(), |e| format!("{e:?}"))
                ),
            });
        }
    };
    if examples.is_empty() {
        return Err(TextError::Format {
            path: path.to_path_buf(),
            message: "no examples".into(),
        });
    }
    Ok(examples)
}

fn example_error(path: &Path, line: usize, message: String) -> TextError {
    TextError::Example {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// `raw` as a label; `shown` is how the file wrote it.
fn parse_label(
    path: &Path,
    line: usize,
    column: &str,
    raw: &str,
    shown: &str,
) -> Result<usize, TextError> {
    raw.trim().parse::<usize>().map_err(|_| {
        example_error(
            path,
            line,
            format!("{column} = {shown}: a class number, an integer >= 0"),
        )
    })
}

fn jsonl(path: &Path, text: &str, columns: &Columns) -> Result<Vec<Labelled>, TextError> {
    let mut examples = Vec::new();
    for (i, row) in text.lines().enumerate() {
        let line = i + 1;
        if row.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(row)
            .map_err(|e| example_error(path, line, format!("not JSON: {e}")))?;
        let field = |name: &str| {
            value.get(name).ok_or_else(|| {
                example_error(
                    path,
                    line,
                    format!("no field {name:?} (the text and label columns)"),
                )
            })
        };
        let text = field(&columns.text)?
            .as_str()
            .ok_or_else(|| example_error(path, line, format!("{}: a string", columns.text)))?
            .to_string();
        let label = match field(&columns.label)? {
            serde_json::Value::Number(n) => {
                parse_label(path, line, &columns.label, &n.to_string(), &n.to_string())?
            }
            other => {
                return Err(example_error(
                    path,
                    line,
                    format!(
                        "{} = {other}: a class number, an integer >= 0",
                        columns.label
                    ),
                ));
            }
        };
        examples.push(Labelled { text, label, line });
    }
    Ok(examples)
}

fn csv_rows(path: &Path, text: &str, columns: &Columns) -> Result<Vec<Labelled>, TextError> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| TextError::Format {
            path: path.to_path_buf(),
            message: format!("no CSV header row: {e}"),
        })?
        .clone();
    let index = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| TextError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "no column {name:?}; the header names {}",
                    header
                        .iter()
                        .map(|h| format!("{h:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    };
    let (text_at, label_at) = (index(&columns.text)?, index(&columns.label)?);
    let mut examples = Vec::new();
    for record in reader.records() {
        let (record, line) = csv_record(path, record)?;
        let cell = |at: usize| record.get(at).unwrap_or_default();
        examples.push(Labelled {
            text: cell(text_at).to_string(),
            label: parse_label(
                path,
                line,
                &columns.label,
                cell(label_at),
                &format!("{:?}", cell(label_at)),
            )?,
            line,
        });
    }
    Ok(examples)
}

/// A CSV row and the line it starts on, or an error naming that line.
fn csv_record(
    path: &Path,
    record: Result<csv::StringRecord, csv::Error>,
) -> Result<(csv::StringRecord, usize), TextError> {
    let record = record.map_err(|e| {
        let line = e.position().map_or(0, |p| p.line() as usize);
        example_error(path, line, format!("not a CSV row: {e}"))
    })?;
    let line = record.position().map_or(0, |p| p.line() as usize);
    Ok((record, line))
}

/// AG-News's layout: every row class (1-4), title, description.
fn ag_news_rows(path: &Path, text: &str) -> Result<Vec<Labelled>, TextError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut examples = Vec::new();
    for record in reader.records() {
        let (record, line) = csv_record(path, record)?;
        let [class, title, description] = [0, 1, 2].map(|i| record.get(i));
        let (Some(class), Some(title), Some(description), 3) =
            (class, title, description, record.len())
        else {
            return Err(example_error(
                path,
                line,
                format!(
                    "{} columns: AG-News's layout has 3 (class 1-4, title, description)",
                    record.len()
                ),
            ));
        };
        let label = match class.trim().parse::<usize>() {
            Ok(class @ 1..=4) => class - 1,
            _ => {
                return Err(example_error(
                    path,
                    line,
                    format!("class = {class:?}: AG-News's classes are 1 to 4"),
                ));
            }
        };
        examples.push(Labelled {
            text: format!("{title} {description}"),
            label,
            line,
        });
    }
    Ok(examples)
}

/// How a classifier's texts become rows of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifierEncoding {
    /// Tokens per row; longer texts are cut.
    pub max_length: usize,
    /// The token rows are right-padded with.
    pub pad_id: u32,
    /// With the tokenizer's special tokens (an encoder's `[CLS] … [SEP]`),
    /// the text cut so that they fit, as `transformers`' tokenizers do with
    /// `truncation=True`; else the bare ids, cut.
    pub special_tokens: bool,
}

/// A classifier's examples and how many of their texts were cut.
#[derive(Debug, Clone)]
pub struct Classified {
    pub data: SequenceDataset,
    pub truncated: usize,
}

/// A classifier's examples: each text's ids as `encoding` says, cut to
/// `max_length` and right-padded, its label the one target. A label not
/// below `num_labels` is an error naming its line.
pub fn classification(
    tokenizer: &TextTokenizer,
    examples: &[Labelled],
    encoding: ClassifierEncoding,
    num_labels: usize,
    vocab: usize,
    path: &Path,
) -> Result<Classified, TextError> {
    let origin = path.display().to_string();
    let max_length = encoding.max_length;
    if max_length == 0 {
        return Err(TextError::Format {
            path: path.to_path_buf(),
            message: "max_length = 0: at least 1 token per example".into(),
        });
    }
    let truncating = tokenizer.truncating(max_length, encoding.special_tokens)?;
    let mut tokens = Vec::with_capacity(examples.len() * max_length);
    let mut targets = Vec::with_capacity(examples.len());
    let mut truncated = 0;
    for example in examples {
        if example.label >= num_labels {
            return Err(example_error(
                path,
                example.line,
                format!(
                    "label {}: the model has {num_labels} labels (0 to {})",
                    example.label,
                    num_labels - 1
                ),
            ));
        }
        let (mut ids, cut) = truncating.encode(&example.text)?;
        truncated += usize::from(cut);
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(TextError::Vocab {
                origin: format!("{origin}:{}", example.line),
                id,
                vocab,
            });
        }
        ids.resize(max_length, encoding.pad_id);
        tokens.extend_from_slice(&ids);
        targets.push(example.label as u32);
    }
    let data = SequenceDataset::new(tokens, targets, max_length, 1, vocab.max(num_labels))
        .map_err(|e| TextError::Encode {
            origin,
            message: e.to_string(),
        })?;
    Ok(Classified { data, truncated })
}

#[cfg(test)]
mod tests {
    use synth_data::Dataset;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn jsonl_and_csv_give_the_same_examples() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = write(
            dir.path(),
            "a.jsonl",
            "{\"text\": \"In the beginning\", \"label\": 1}\n\n{\"label\": 0, \"text\": \"a, b\"}\n",
        );
        let csv = write(
            dir.path(),
            "a.csv",
            "label,text\n1,In the beginning\n0,\"a, b\"\n",
        );
        let from_jsonl = read_labelled(&jsonl, &Columns::default()).unwrap();
        let from_csv = read_labelled(&csv, &Columns::default()).unwrap();
        let pairs = |e: &[Labelled]| -> Vec<(String, usize)> {
            e.iter().map(|e| (e.text.clone(), e.label)).collect()
        };
        assert_eq!(pairs(&from_jsonl), pairs(&from_csv));
        assert_eq!(pairs(&from_jsonl)[1], ("a, b".to_string(), 0));
        // Lines as a reader counts them: a blank line skipped, a header row.
        assert_eq!(
            from_jsonl.iter().map(|e| e.line).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(from_csv.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3]);
    }

    /// The AG-News reader gives the examples `tools/data/agnews.py` (the
    /// Hugging Face `ag_news` loader's rule) wrote for the same CSV: quotes,
    /// commas, backslashes and a line break inside a field, an empty field.
    #[test]
    fn ag_news_csv_reads_as_the_hugging_face_loader_builds_it() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/agnews");
        let layout = Columns {
            csv: CsvLayout::AgNews,
            ..Columns::default()
        };
        let from_csv = read_labelled(&dir.join("sample.csv"), &layout).unwrap();
        let reference = read_labelled(&dir.join("sample.jsonl"), &Columns::default()).unwrap();
        let pairs = |e: &[Labelled]| -> Vec<(String, usize)> {
            e.iter().map(|e| (e.text.clone(), e.label)).collect()
        };
        assert_eq!(pairs(&from_csv), pairs(&reference));
        assert_eq!(from_csv.len(), 4);
        assert_eq!(
            from_csv.iter().map(|e| e.line).collect::<Vec<_>>(),
            [1, 2, 3, 5]
        );
    }

    #[test]
    fn ag_news_rows_out_of_layout_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Columns {
            csv: CsvLayout::AgNews,
            ..Columns::default()
        };
        let err = |name: &str, text: &str| {
            read_labelled(&write(dir.path(), name, text), &layout)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("a.csv", "\"1\",\"t\",\"d\"\n\"5\",\"t\",\"d\"\n")
                .contains("a.csv:2: class = \"5\": AG-News's classes are 1 to 4")
        );
        assert!(err("b.csv", "\"0\",\"t\",\"d\"\n").contains("class = \"0\""));
        let last = read_labelled(&write(dir.path(), "f.csv", "\"4\",\"t\",\"d\"\n"), &layout);
        assert_eq!(last.unwrap()[0].label, 3);
        // A file with a header row is not AG-News's layout.
        assert!(
            err("c.csv", "label,text\n1,x\n")
                .contains("c.csv:1: 2 columns: AG-News's layout has 3")
        );
        assert!(err("d.csv", "\"1\",\"t\",\"d\",\"e\"\n").contains("4 columns"));
        assert!(err("e.jsonl", "{}\n").contains("a .jsonl file with the CSV layout \"ag_news\""));
        assert_eq!(
            "csv".parse::<CsvLayout>().unwrap_err(),
            format!("\"csv\": {}", CsvLayout::ALLOWED)
        );
        assert_eq!("ag_news".parse::<CsvLayout>(), Ok(CsvLayout::AgNews));
    }

    #[test]
    fn bad_files_name_the_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let err = |name: &str, text: &str| {
            read_labelled(&write(dir.path(), name, text), &Columns::default())
                .unwrap_err()
                .to_string()
        };
        assert!(err("a.txt", "x").contains("extension \"txt\": .jsonl"));
        assert!(err("a.jsonl", "").ends_with("no examples"));
        assert!(
            err("b.jsonl", "{\"text\": \"x\", \"label\": 0}\n{bad\n")
                .contains("b.jsonl:2: not JSON")
        );
        assert!(err("c.jsonl", "{\"text\": \"x\"}\n").contains("c.jsonl:1: no field \"label\""));
        assert!(
            err("d.jsonl", "{\"text\": \"x\", \"label\": -1}\n")
                .contains("d.jsonl:1: label = -1: a class number")
        );
        assert!(
            err("e.jsonl", "{\"text\": \"x\", \"label\": \"pos\"}\n").contains("label = \"pos\"")
        );
        assert!(
            err("f.jsonl", "{\"text\": 3, \"label\": 0}\n").contains("f.jsonl:1: text: a string")
        );
        assert!(
            err("a.csv", "label,body\n0,x\n")
                .contains("no column \"text\"; the header names \"label\", \"body\"")
        );
        assert!(err("b.csv", "label,text\n0,x\nzero,y\n").contains("b.csv:3: label = \"zero\""));
    }

    #[test]
    fn texts_are_cut_and_right_padded_and_labels_checked() {
        let tokenizer = TextTokenizer::train_byte_level_bpe(&["abc abc abd"], 270).unwrap();
        let examples = vec![
            Labelled {
                text: "abc abd abc abd abc".into(),
                label: 2,
                line: 1,
            },
            Labelled {
                text: "ab".into(),
                label: 0,
                line: 2,
            },
            Labelled {
                text: String::new(),
                label: 1,
                line: 3,
            },
        ];
        let path = Path::new("x.jsonl");
        let encoding = ClassifierEncoding {
            max_length: 4,
            pad_id: 0,
            special_tokens: false,
        };
        let Classified { data, truncated } =
            classification(&tokenizer, &examples, encoding, 3, 270, path).unwrap();
        assert_eq!(truncated, 1);
        assert_eq!(data.len(), 3);
        let long = tokenizer.encode(&examples[0].text).unwrap();
        assert!(long.len() > 4);
        let first = data.get(0).unwrap();
        assert_eq!(first.tokens, long[..4]);
        assert_eq!(first.targets, [2]);
        let short = tokenizer.encode("ab").unwrap();
        let mut padded = short.clone();
        padded.resize(4, 0);
        assert_eq!(data.get(1).unwrap().tokens, padded);
        assert_eq!(data.get(2).unwrap().tokens, [0, 0, 0, 0]);
        let err = classification(&tokenizer, &examples, encoding, 2, 270, path)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "x.jsonl:1: label 2: the model has 2 labels (0 to 1)");
    }

    /// An encoder's rows as `transformers` tokenizes them
    /// (fixtures/bert/golden.json: `truncation=True, max_length=16`): `[CLS]`
    /// first, `[SEP]` last even when the text is cut, padding after it.
    #[test]
    fn special_tokens_fit_inside_max_length_as_in_transformers() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bert");
        let golden: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixtures.join("golden.json")).unwrap())
                .unwrap();
        let texts: Vec<String> = serde_json::from_value(golden["texts"].clone()).unwrap();
        let want: Vec<Vec<u32>> = serde_json::from_value(golden["input_ids"].clone()).unwrap();
        let tokenizer =
            TextTokenizer::from_file(&fixtures.join("tiny-distilbert/tokenizer.json")).unwrap();
        let examples: Vec<Labelled> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| Labelled {
                text: text.clone(),
                label: 0,
                line: i + 1,
            })
            .collect();
        let encoding = ClassifierEncoding {
            max_length: 16,
            pad_id: 0,
            special_tokens: true,
        };
        let Classified { data, truncated } = classification(
            &tokenizer,
            &examples,
            encoding,
            2,
            256,
            Path::new("x.jsonl"),
        )
        .unwrap();
        for (i, row) in want.iter().enumerate() {
            assert_eq!(data.get(i).unwrap().tokens, *row, "text {i}");
        }
        assert_eq!(truncated, 2, "two of the three are cut");

        // A file saved with truncation and padding set encodes as one
        // without: lrscape cuts and pads where it says.
        let dir = tempfile::tempdir().unwrap();
        let mut json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures.join("tiny-bert/tokenizer.json")).unwrap(),
        )
        .unwrap();
        json["truncation"] = serde_json::json!({"direction": "Right", "max_length": 4,
            "strategy": "LongestFirst", "stride": 0});
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, json.to_string()).unwrap();
        let saved = TextTokenizer::from_file(&path).unwrap();
        assert_eq!(
            saved.encode_with_special_tokens(&texts[0]).unwrap(),
            tokenizer.encode_with_special_tokens(&texts[0]).unwrap()
        );
        assert!(tokenizer.encode(&texts[0]).unwrap().len() > 16);
    }
}
