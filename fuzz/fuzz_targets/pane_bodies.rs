//! The pane's request bodies and queries on arbitrary bytes: every form and
//! query type the handlers take through axum's `Form`/`Query`
//! (serde_urlencoded), every JSON body through `Json` (serde_json), and the
//! parse of a regarding record the forms carry. Nothing panics.

#![no_main]

use crmproxy::pane::bodies::*;
use crmproxy::pane::session::constant_time_eq;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn form<T: DeserializeOwned>(b: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<T>(b).is_ok()
}

fn json<T: DeserializeOwned>(b: &[u8]) -> bool {
    serde_json::from_slice::<T>(b).is_ok()
}

fuzz_target!(|body: &[u8]| {
    // Forms (POST bodies) and queries: axum's Form and Query use serde_urlencoded.
    let _ = form::<ActionForm>(body)
        | form::<ActivityFields>(body)
        | form::<CurrentForm>(body)
        | form::<DraftFields>(body)
        | form::<FavouriteForm>(body)
        | form::<PersonFields>(body)
        | form::<RecordFields>(body)
        | form::<SigninForm>(body)
        | form::<SnoozeForm>(body)
        | form::<SwitchForm>(body)
        | form::<AssistantQuery>(body)
        | form::<ChooseParams>(body)
        | form::<ComposeParams>(body)
        | form::<CreateParams>(body)
        | form::<DocumentsParams>(body)
        | form::<HomeQuery>(body)
        | form::<LinkQuery>(body)
        | form::<ListParams>(body)
        | form::<MessageParams>(body)
        | form::<MessageQuery>(body)
        | form::<NewRecordParams>(body)
        | form::<NewPersonParams>(body)
        | form::<PickParams>(body)
        | form::<SearchParams>(body)
        | form::<SigninQuery>(body);
    // JSON bodies of the API routes.
    let _ = json::<ActionBody>(body)
        | json::<ActivityFields>(body)
        | json::<ApiBody>(body)
        | json::<DraftFields>(body)
        | json::<FavouriteBody>(body)
        | json::<OpenedItem>(body)
        | json::<PersonFields>(body)
        | json::<RecordFields>(body)
        | json::<SnoozeBody>(body);
    // What the forms' values go through.
    let text = String::from_utf8_lossy(body);
    let _ = parse_regarding(Some(&text));
    for (_, v) in form_urlencoded::parse(body) {
        let _ = parse_regarding(Some(&v));
    }
    let (a, b) = body.split_at(body.len() / 2);
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    assert_eq!(constant_time_eq(&a, &b), a == b);
});
