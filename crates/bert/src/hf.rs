//! Hugging Face directories of DistilBERT and BERT: `config.json` with
//! `model.safetensors` (or shards). f16 and bf16 weights are read as f32;
//! `nn.Linear` weights are `[out, in]` in the file and `[in, out]` in
//! lrscape. Body keys may be prefixed (`distilbert.`, `bert.`, as the task
//! models save them) or bare (`DistilBertModel`, `BertModel`); old BERT
//! checkpoints' LayerNorm `gamma`/`beta` read as `weight`/`bias`. A masked
//! LM's head is ignored; a classifier's head is read when its label count
//! is the one asked for.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use nn::safetensors_io::{self, HostTensor};

use crate::BertError;
use crate::classify::{BertForSequenceClassification, new_head};
use crate::config::{BertConfig, Variant};
use crate::masked_lm::BertForMaskedLM;
use crate::model::{Bert, EmbeddingWeights, LayerWeights, LinearWeights, NormWeights};

pub const CONFIG: &str = "config.json";
pub use safetensors_io::{INDEX, WEIGHTS};

/// `dir/config.json`, checked.
pub fn read_config(dir: &Path) -> Result<BertConfig, BertError> {
    if !dir.is_dir() {
        return Err(BertError::file(
            dir,
            "no such directory (a Hugging Face model directory: config.json, model.safetensors)",
        ));
    }
    let path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| BertError::file(&path, e))?;
    BertConfig::from_hf_json(&text, &path)
}

/// Reads `dir` as a sequence classifier of `num_labels` labels: the
/// checkpoint's own head where it is a classifier of that many labels,
/// else a new one ([`new_head`]; BERT's pooler is the checkpoint's where
/// it has one, as `transformers` loads it).
pub fn load_classifier(
    dir: &Path,
    num_labels: usize,
    device: &Device,
) -> Result<(BertConfig, BertForSequenceClassification), BertError> {
    let config = read_config(dir)?;
    let mut tensors = read_weights(dir, config.variant)?;
    let bert = build(&config, &mut tensors, device)?;
    let d = config.hidden_size;
    let (new_pooler, new_classifier) = new_head(d, num_labels, device);
    let pooler = match config.variant {
        Variant::DistilBert => "pre_classifier",
        Variant::Bert => "pooler.dense",
    };
    let has = |tensors: &HashMap<String, HostTensor>, name: &str| {
        tensors.contains_key(&format!("{name}.weight"))
    };
    let own_classifier = config.num_labels == Some(num_labels) && has(&tensors, "classifier");
    let own_pooler = has(&tensors, pooler);
    let mut take = Taker {
        tensors: &mut tensors,
        device,
    };
    let pooler = match own_pooler {
        true => take.linear(pooler, d, d)?,
        false => new_pooler,
    };
    let classifier = match own_classifier {
        true => take.linear("classifier", d, num_labels)?,
        false => new_classifier,
    };
    Ok((
        config,
        BertForSequenceClassification::new(bert, pooler, classifier),
    ))
}

/// Reads `dir` as a masked LM: the checkpoint's MLM head (DistilBERT's
/// `vocab_transform`, `vocab_layer_norm`, `vocab_projector.bias`; BERT's
/// `cls.predictions.*`).
pub fn load_masked_lm(
    dir: &Path,
    device: &Device,
) -> Result<(BertConfig, BertForMaskedLM), BertError> {
    let config = read_config(dir)?;
    let mut tensors = read_weights(dir, config.variant)?;
    let bert = build(&config, &mut tensors, device)?;
    let d = config.hidden_size;
    let (transform, norm, bias) = mlm_names(config.variant);
    let mut take = Taker {
        tensors: &mut tensors,
        device,
    };
    let (w, b) = take.linear(transform, d, d)?;
    let (nw, nb) = take.norm(norm, d)?;
    let bias = Tensor::<1>::from_data(take.data(bias.into(), &[config.vocab_size])?, device);
    let model = BertForMaskedLM {
        bert,
        transform: nn::PopLinear::from_weights(w, Some(b)),
        norm: nn::LayerNorm::from_weights(nw, nb, config.layer_norm_eps),
        bias: burn::module::Param::from_tensor(bias.unsqueeze_dim::<2>(0)),
    };
    Ok((config, model))
}

/// The MLM head's keys: `(transform, norm, bias)`.
fn mlm_names(variant: Variant) -> (&'static str, &'static str, &'static str) {
    match variant {
        Variant::DistilBert => (
            "vocab_transform",
            "vocab_layer_norm",
            "vocab_projector.bias",
        ),
        Variant::Bert => (
            "cls.predictions.transform.dense",
            "cls.predictions.transform.LayerNorm",
            "cls.predictions.bias",
        ),
    }
}

/// Every tensor of the directory's weight files, by its key in the body
/// (`embeddings.…`, `transformer.layer.…`/`encoder.layer.…`, BERT's
/// `pooler.dense.…`) or the head (`pre_classifier.…`, `classifier.…`).
fn read_weights(dir: &Path, variant: Variant) -> Result<HashMap<String, HostTensor>, BertError> {
    let prefix = format!("{}.", variant.prefix());
    let mut tensors = HashMap::new();
    for file in safetensors_io::weight_files(dir)? {
        let read = safetensors_io::read_file(&file).map_err(|e| BertError::file(&file, e))?;
        for (name, tensor) in read {
            let key = name.strip_prefix(&prefix).unwrap_or(&name);
            let key = if key.contains("LayerNorm.") {
                key.replace("LayerNorm.gamma", "LayerNorm.weight")
                    .replace("LayerNorm.beta", "LayerNorm.bias")
            } else {
                key.to_string()
            };
            tensors.insert(key, tensor);
        }
    }
    Ok(tensors)
}

/// Takes tensors out of a checkpoint's map, checking their shapes.
struct Taker<'a> {
    tensors: &'a mut HashMap<String, HostTensor>,
    device: &'a Device,
}

impl Taker<'_> {
    fn data(&mut self, key: String, shape: &[usize]) -> Result<TensorData, BertError> {
        let tensor = self
            .tensors
            .remove(&key)
            .ok_or_else(|| BertError::MissingTensor { key: key.clone() })?;
        Ok(tensor.take(&key, shape)?)
    }

    fn table(&mut self, key: &str, rows: usize, d: usize) -> Result<Tensor<2>, BertError> {
        let data = self.data(format!("{key}.weight"), &[rows, d])?;
        Ok(Tensor::from_data(data, self.device))
    }

    /// `name.weight` (`[out, in]`) as `[in, out]`, and `name.bias`.
    fn linear(
        &mut self,
        name: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<LinearWeights, BertError> {
        let w = self.data(format!("{name}.weight"), &[d_out, d_in])?;
        let b = self.data(format!("{name}.bias"), &[d_out])?;
        Ok((
            Tensor::<2>::from_data(w, self.device).transpose(),
            Tensor::from_data(b, self.device),
        ))
    }

    fn norm(&mut self, name: &str, d: usize) -> Result<NormWeights, BertError> {
        let w = self.data(format!("{name}.weight"), &[d])?;
        let b = self.data(format!("{name}.bias"), &[d])?;
        Ok((
            Tensor::from_data(w, self.device),
            Tensor::from_data(b, self.device),
        ))
    }
}

/// Where a variant's blocks sit and the HF names of their modules.
struct LayerNames {
    blocks: &'static str,
    query: &'static str,
    key: &'static str,
    value: &'static str,
    attention_output: &'static str,
    attention_norm: &'static str,
    intermediate: &'static str,
    output: &'static str,
    output_norm: &'static str,
}

fn layer_names(variant: Variant) -> LayerNames {
    match variant {
        Variant::DistilBert => LayerNames {
            blocks: "transformer.layer",
            query: "attention.q_lin",
            key: "attention.k_lin",
            value: "attention.v_lin",
            attention_output: "attention.out_lin",
            attention_norm: "sa_layer_norm",
            intermediate: "ffn.lin1",
            output: "ffn.lin2",
            output_norm: "output_layer_norm",
        },
        Variant::Bert => LayerNames {
            blocks: "encoder.layer",
            query: "attention.self.query",
            key: "attention.self.key",
            value: "attention.self.value",
            attention_output: "attention.output.dense",
            attention_norm: "attention.output.LayerNorm",
            intermediate: "intermediate.dense",
            output: "output.dense",
            output_norm: "output.LayerNorm",
        },
    }
}

fn build(
    config: &BertConfig,
    tensors: &mut HashMap<String, HostTensor>,
    device: &Device,
) -> Result<Bert, BertError> {
    let (d, ff) = (config.hidden_size, config.intermediate_size);
    let mut take = Taker { tensors, device };
    let embeddings = EmbeddingWeights {
        word: take.table("embeddings.word_embeddings", config.vocab_size, d)?,
        position: take.table(
            "embeddings.position_embeddings",
            config.max_position_embeddings,
            d,
        )?,
        token_type: match config.type_vocab_size {
            0 => None,
            n => Some(take.table("embeddings.token_type_embeddings", n, d)?),
        },
        norm: take.norm("embeddings.LayerNorm", d)?,
    };
    let names = layer_names(config.variant);
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for i in 0..config.num_hidden_layers {
        let at = |name: &str| format!("{}.{i}.{name}", names.blocks);
        layers.push(LayerWeights {
            query: take.linear(&at(names.query), d, d)?,
            key: take.linear(&at(names.key), d, d)?,
            value: take.linear(&at(names.value), d, d)?,
            attention_output: take.linear(&at(names.attention_output), d, d)?,
            attention_norm: take.norm(&at(names.attention_norm), d)?,
            intermediate: take.linear(&at(names.intermediate), d, ff)?,
            output: take.linear(&at(names.output), ff, d)?,
            output_norm: take.norm(&at(names.output_norm), d)?,
        });
    }
    Ok(Bert::from_weights(config, embeddings, layers))
}

/// Writes `model` (member 0 of every parameter) and `config` as a
/// `*ForSequenceClassification` directory `transformers` loads.
pub fn save_classifier(
    model: &BertForSequenceClassification,
    config: &BertConfig,
    dir: &Path,
) -> Result<(), BertError> {
    let mut tensors = Tensors::default();
    tensors.body(&model.bert);
    let pooler = match model.bert.variant() {
        Variant::DistilBert => "pre_classifier".to_string(),
        Variant::Bert => "bert.pooler.dense".to_string(),
    };
    tensors.linear(pooler, &model.pooler);
    tensors.linear("classifier".into(), &model.classifier);
    let json = config.to_json(
        config.variant.classifier_architecture(),
        Some(model.num_labels()),
    );
    write_dir(dir, tensors.0, &json)
}

/// Writes `model` (member 0 of every parameter) and `config` as a
/// `*ForMaskedLM` directory `transformers` loads (the decoder's weight is
/// the token embedding, tied, as `transformers` saves it).
pub fn save_masked_lm(
    model: &BertForMaskedLM,
    config: &BertConfig,
    dir: &Path,
) -> Result<(), BertError> {
    let mut tensors = Tensors::default();
    tensors.body(&model.bert);
    let (transform, norm, bias) = mlm_names(config.variant);
    tensors.linear(transform.into(), &model.transform);
    tensors.norm(norm.into(), &model.norm);
    tensors.0.insert(bias.into(), vector(model.bias.val()));
    let json = config.to_json(config.variant.masked_lm_architecture(), None);
    write_dir(dir, tensors.0, &json)
}

fn vector(p: Tensor<2>) -> TensorData {
    p.narrow(0, 0, 1).squeeze_dim::<1>(0).into_data()
}

/// Tensors to save, by `transformers`' keys.
#[derive(Default)]
struct Tensors(BTreeMap<String, TensorData>);

impl Tensors {
    fn linear(&mut self, key: String, l: &nn::PopLinear) {
        let (w, b) = l.member(0);
        self.0
            .insert(format!("{key}.weight"), w.transpose().into_data());
        if let Some(b) = b {
            self.0.insert(format!("{key}.bias"), b.into_data());
        }
    }

    fn norm(&mut self, key: String, n: &nn::LayerNorm) {
        self.0
            .insert(format!("{key}.weight"), vector(n.weight.val()));
        self.0.insert(format!("{key}.bias"), vector(n.bias.val()));
    }

    /// The body, under the task models' prefix (`distilbert.`, `bert.`).
    fn body(&mut self, bert: &Bert) {
        let variant = bert.variant();
        let body = format!("{}.", variant.prefix());
        let names = layer_names(variant);
        for (i, layer) in bert.layers.iter().enumerate() {
            let at = |name: &str| format!("{body}{}.{i}.{name}", names.blocks);
            self.linear(at(names.query), &layer.attention.query);
            self.linear(at(names.key), &layer.attention.key);
            self.linear(at(names.value), &layer.attention.value);
            self.linear(at(names.attention_output), &layer.attention.output);
            self.linear(at(names.intermediate), &layer.intermediate);
            self.linear(at(names.output), &layer.output);
            self.norm(at(names.attention_norm), &layer.attention_norm);
            self.norm(at(names.output_norm), &layer.output_norm);
        }
        let e = &bert.embeddings;
        self.norm(format!("{body}embeddings.LayerNorm"), &e.layer_norm);
        let mut tables = vec![
            ("word_embeddings", &e.word_embeddings),
            ("position_embeddings", &e.position_embeddings),
        ];
        if let Some(types) = &e.token_type_embeddings {
            tables.push(("token_type_embeddings", types));
        }
        for (name, table) in tables {
            let first = table.val().narrow(0, 0, 1).squeeze_dim::<2>(0);
            self.0
                .insert(format!("{body}embeddings.{name}.weight"), first.into_data());
        }
    }
}

fn write_dir(
    dir: &Path,
    tensors: BTreeMap<String, TensorData>,
    json: &str,
) -> Result<(), BertError> {
    std::fs::create_dir_all(dir).map_err(|e| BertError::file(dir, e))?;
    let bytes = safetensors_io::to_bytes(&tensors).map_err(|e| BertError::file(dir, e))?;
    write(&dir.join(WEIGHTS), &bytes)?;
    write(&dir.join(CONFIG), json.as_bytes())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BertError> {
    std::fs::write(path, bytes).map_err(|e| BertError::file(path, e))
}
