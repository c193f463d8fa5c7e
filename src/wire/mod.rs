//! IMAP wire framing: streaming, structural, generic over AsyncRead/AsyncWrite.
