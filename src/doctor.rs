//! `crmproxy doctor`: checks of config, certificates and the upstream server.
