//! The proxy: listeners, per-connection sessions, upstream connections, session state.
