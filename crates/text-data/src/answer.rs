//! Answers in generated text, as math benchmarks score them: GSM8K's
//! `#### <answer>` where the text has one, else the last number (which
//! also finds MetaMathQA's "The answer is: 18"); two answers agree when
//! both are numbers of equal value (commas, a `$` and a trailing period
//! aside), or when their texts are equal.

/// The numbers in `text`, in order: an optional minus sign, digits with
/// optional thousands commas, an optional decimal part.
fn numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let negative = i > 0 && chars[i - 1] == '-';
        let mut number = String::from(if negative { "-" } else { "" });
        while i < chars.len() {
            let c = chars[i];
            let next_is_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if c.is_ascii_digit() {
                number.push(c);
            } else if c == ',' && next_is_digit {
                // A thousands separator, dropped.
            } else if c == '.' && next_is_digit && !number.contains('.') {
                number.push(c);
            } else {
                break;
            }
            i += 1;
        }
        found.push(number);
    }
    found
}

/// The answer `text` gives: what follows its last `####` (the number
/// there, else the trimmed text), else its last number; `None` when it
/// has neither.
pub fn extract_answer(text: &str) -> Option<String> {
    if let Some((_, after)) = text.rsplit_once("####") {
        let after = after.trim();
        return numbers(after)
            .into_iter()
            .next()
            .or_else(|| (!after.is_empty()).then(|| after.to_string()));
    }
    numbers(text).pop()
}

/// Whether two answers agree: equal numbers, or equal trimmed texts.
pub fn answers_match(a: &str, b: &str) -> bool {
    let clean = |s: &str| {
        s.trim()
            .trim_start_matches('$')
            .trim_end_matches('.')
            .replace(',', "")
    };
    let (a, b) = (clean(a), clean(b));
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_as_math_benchmarks_find_them() {
        for (text, want) in [
            ("She has 3 + 4 = 7 apples.\n#### 7", Some("7")),
            ("Total: 1,234 dollars #### 1,234", Some("1234")),
            ("#### -12.5 degrees", Some("-12.5")),
            ("It costs $18.\nThe answer is: 18", Some("18")),
            ("2 and 3 make 5.", Some("5")),
            ("The answer is 3.5.", Some("3.5")),
            ("#### seven", Some("seven")),
            ("no number here", None),
            ("#### 4 then #### 9", Some("9")),
            // A second decimal point ends a number: "2.0", then "1".
            ("version 2.0.1", Some("1")),
            ("a-3", Some("-3")),
        ] {
            assert_eq!(extract_answer(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn equal_values_match_whatever_their_spelling() {
        assert!(answers_match("18", "18.0"));
        assert!(answers_match("$1,000", "1000"));
        assert!(answers_match("7.", "7"));
        assert!(answers_match(" seven ", "seven"));
        assert!(!answers_match("18", "19"));
        assert!(!answers_match("1e3", "100"));
        assert!(!answers_match("seven", "7"));
    }
}
