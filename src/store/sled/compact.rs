//! Rows as sled stores them: JSON without the empty fields (`""`, `null`, `[]`,
//! `{}`) when the row reads back the same without them (the model's
//! `#[serde(default)]` fills them in), else whole. A contact's empty address
//! parts, phone and links were a fifth of its bytes, and sled keeps each byte
//! about twice over on disk (rewritten pages it has not reclaimed yet). A row
//! written whole, before this, reads the same: nothing to migrate.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The bytes to store for `row`.
pub(crate) fn compact<T: Serialize + DeserializeOwned + PartialEq>(row: &T) -> Vec<u8> {
    let whole = serde_json::to_vec(row).expect("store rows serialise");
    let Ok(mut value) = serde_json::from_slice::<Value>(&whole) else {
        return whole;
    };
    drop_empty(&mut value);
    let short = serde_json::to_vec(&value).expect("JSON values serialise");
    match serde_json::from_slice::<T>(&short) {
        Ok(back) if back == *row => short,
        _ => whole,
    }
}

/// Remove the empty members of every object in `v`, at any depth.
fn drop_empty(v: &mut Value) {
    match v {
        Value::Object(members) => members.retain(|_, m| {
            drop_empty(m);
            !match m {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                Value::Bool(_) | Value::Number(_) => false,
            }
        }),
        Value::Array(items) => items.iter_mut().for_each(drop_empty),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        #[serde(default)]
        a: String,
        #[serde(default = "dash")]
        b: String,
        c: Option<u8>,
        #[serde(default)]
        d: Vec<Row>,
    }

    fn dash() -> String {
        "-".into()
    }

    #[test]
    fn empty_fields_are_left_out_only_when_the_row_reads_back_the_same() {
        let row = Row {
            a: String::new(),
            b: "x".into(),
            c: None,
            d: vec![Row {
                a: "y".into(),
                b: "z".into(),
                c: Some(0),
                d: vec![],
            }],
        };
        let bytes = compact(&row);
        assert_eq!(bytes, br#"{"b":"x","d":[{"a":"y","b":"z","c":0}]}"#);
        assert_eq!(serde_json::from_slice::<Row>(&bytes).unwrap(), row);
        // An empty `b` would come back as "-": the row is kept whole.
        let row = Row {
            a: String::new(),
            b: String::new(),
            c: None,
            d: vec![],
        };
        assert_eq!(compact(&row), serde_json::to_vec(&row).unwrap());
    }

    #[test]
    fn a_stored_contact_leaves_out_its_empty_fields_and_reads_back_whole() {
        use crate::store::sled::{index as ix, SledStore};
        use crate::store::*;
        let d = tempfile::tempdir().unwrap();
        let s = SledStore::open(d.path()).unwrap();
        // Written as a file would have it: only the fields that are set.
        let now = chrono::Utc::now();
        let contact: Record = serde_json::from_value(serde_json::json!({
            "type": "contact", "id": uuid::Uuid::new_v4(), "created": now, "modified": now,
            "first_name": "Zoë", "last_name": "Müller", "company": "Contoso",
        }))
        .unwrap();
        let c = s.put_record(contact).unwrap();
        let raw = s.tree(ix::RECORDS).get(c.id().as_bytes()).unwrap().unwrap();
        let text = std::str::from_utf8(&raw).unwrap();
        for gone in ["mobile_phone", "address", "account", "job_title"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert_eq!(s.record(c.id()).unwrap(), Some(c));
    }
}
