//! Decoding of pgoutput (protocol version 1) messages.
