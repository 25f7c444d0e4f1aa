//! The data path of one file, between the bucket and the COPY: decoding ([`decode`]) and
//! decode-ahead ([`readahead`]).
pub mod decode;
pub mod readahead;

pub(crate) use decode::DecodeJob;
pub(crate) use readahead::{Prefetch, Tape};
