//! Logs as JSON lines (`--log-format json`): one object per event with its
//! time, level, target, fields and the spans it happened in (a mailbox task's
//! span names its mailbox), for log collectors.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON event format.
pub struct JsonLines;

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut obj = Map::new();
        obj.insert(
            "time".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        obj.insert("level".into(), event.metadata().level().as_str().into());
        obj.insert("target".into(), event.metadata().target().into());
        let mut fields = Map::new();
        event.record(&mut Fields(&mut fields));
        obj.extend(fields);
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let mut s = Map::new();
                s.insert("name".into(), span.name().into());
                if let Some(f) = span.extensions().get::<FormattedFields<N>>() {
                    if !f.is_empty() {
                        s.insert("fields".into(), f.as_str().into());
                    }
                }
                spans.push(Value::Object(s));
            }
        }
        if !spans.is_empty() {
            obj.insert("spans".into(), Value::Array(spans));
        }
        writeln!(writer, "{}", Value::Object(obj))
    }
}
