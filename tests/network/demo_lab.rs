//! `popsel demo` measuring latency in a lab of its own.
