//! Rows as sled stores them. Since schema v6: the binary form of `binrow`, made
//! from the row's JSON value without its empty fields (`""`, `null`, `[]`, `{}`)
//! when the row reads back the same without them (the model's `#[serde(default)]`
//! fills them in), else whole. Rows written before (JSON, whole or without the
//! empty fields) read as they were: the first byte tells which (see [`read`]).
//! A contact's empty address parts, phone and links were a fifth of its JSON, its
//! field names and quoted ids and times most of the rest, and sled keeps each
//! byte about twice over on disk (rewritten pages it has not reclaimed yet).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

mod binrow;

/// The bytes to store for `row`: binary, and checked to read back as `row`.
pub(crate) fn compact<T: Serialize + DeserializeOwned + PartialEq>(row: &T) -> Vec<u8> {
    let reads_back = |bytes: &[u8]| read::<T>(bytes).is_ok_and(|back| back == *row);
    if let Ok(mut value) = serde_json::to_value(row) {
        drop_empty(&mut value);
        let short = binrow::encode(&value);
        if reads_back(&short) {
            return short;
        }
        if let Ok(value) = serde_json::to_value(row) {
            let whole = binrow::encode(&value);
            if reads_back(&whole) {
                return whole;
            }
        }
    }
    // A row whose JSON does not read back as itself: kept as it always was.
    serde_json::to_vec(row).expect("store rows serialise")
}

/// A stored row: binary (v6) or JSON (any older row).
pub(crate) fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.first() == Some(&binrow::TAG) {
        let value = binrow::decode(bytes).map_err(|e| e.to_string())?;
        serde_json::from_value(value).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
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
        assert_eq!(
            binrow::decode(&bytes).unwrap(),
            serde_json::json!({"b":"x","d":[{"a":"y","b":"z","c":0}]})
        );
        assert_eq!(read::<Row>(&bytes).unwrap(), row);
        // An empty `b` would come back as "-": the row is kept whole.
        let row = Row {
            a: String::new(),
            b: String::new(),
            c: None,
            d: vec![],
        };
        let bytes = compact(&row);
        assert_eq!(
            binrow::decode(&bytes).unwrap(),
            serde_json::to_value(&row).unwrap()
        );
        assert_eq!(read::<Row>(&bytes).unwrap(), row);
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
        assert_eq!(raw[0], binrow::TAG);
        let value = binrow::decode(&raw).unwrap();
        for gone in ["mobile_phone", "address", "account", "job_title"] {
            assert!(value.get(gone).is_none(), "{gone} in {value}");
        }
        assert!(raw.len() < 120, "{} bytes", raw.len());
        assert_eq!(s.record(c.id()).unwrap(), Some(c));
    }

    #[test]
    fn rows_written_as_json_before_v6_still_read() {
        use crate::store::sled::{index as ix, SledStore};
        use crate::store::*;
        let d = tempfile::tempdir().unwrap();
        let s = SledStore::open(d.path()).unwrap();
        let now = chrono::Utc::now();
        let id = uuid::Uuid::now_v7();
        // Rows as v5 wrote them: JSON without the empty fields, and JSON whole.
        let short = serde_json::json!({
            "type": "contact", "id": id, "created": now, "modified": now,
            "first_name": "Zoë", "last_name": "Müller",
        });
        let contact: Record = serde_json::from_value(short.clone()).unwrap();
        let whole = serde_json::to_vec(&contact).unwrap();
        for raw in [serde_json::to_vec(&short).unwrap(), whole] {
            assert_eq!(read::<Record>(&raw).unwrap(), contact);
            s.tree(ix::RECORDS).insert(id.as_bytes(), raw).unwrap();
            assert_eq!(s.record(id).unwrap(), Some(contact.clone()));
        }
        // And a change to such a row writes it in the binary form.
        let Record::Contact(mut c) = contact else {
            unreachable!()
        };
        c.job_title = "CFO".into();
        let c = s.put_record(Record::Contact(c)).unwrap();
        let raw = s.tree(ix::RECORDS).get(id.as_bytes()).unwrap().unwrap();
        assert_eq!(raw[0], binrow::TAG);
        assert_eq!(s.record(id).unwrap(), Some(c));
    }
}
