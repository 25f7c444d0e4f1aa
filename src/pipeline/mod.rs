//! The data path of one file, between the bucket and the COPY: decoding ([`decode`]), the split
//! of a change file's new keys ([`split`]) and decode-ahead ([`readahead`]).
pub mod decode;
pub mod readahead;
pub mod split;

pub(crate) use decode::{ChunkSink, DecodeJob};
pub(crate) use readahead::{Prefetch, Recorder, Tape};
