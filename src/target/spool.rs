//! [`Spool`]: bytes written once and read back from their start (decoded tuples kept for later,
//! set-aside rows), in memory up to a limit and in an anonymous temporary file (`TMPDIR`) beyond
//! it. A small file's bytes never touch the disk nor cost a file; a big file's memory stays
//! bounded by the limit.
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Chunk;

/// What a spool keeps in memory at most: the size of the write buffer a temporary file had
/// anyway.
pub const SPOOL_MEMORY: usize = 256 * 1024;

/// Bytes being written: in memory until they pass `limit`, then in a temporary file.
#[derive(Debug)]
pub struct Spool {
    memory: Vec<u8>,
    file: Option<BufWriter<File>>,
    limit: usize,
}

impl Spool {
    /// An empty spool that keeps up to `limit` bytes in memory.
    pub fn new(limit: usize) -> Self {
        Spool {
            memory: Vec::new(),
            file: None,
            limit,
        }
    }

    /// The bytes written, ready to be read back.
    pub fn finish(self) -> std::io::Result<Spooled> {
        match self.file {
            None => Ok(Spooled::Memory(Bytes::from(self.memory))),
            Some(writer) => {
                let mut file = writer.into_inner().map_err(|e| e.into_error())?;
                file.flush()?;
                Ok(Spooled::File(file))
            }
        }
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(file) = self.file.as_mut() {
            return file.write(buf);
        }
        if self.memory.len() + buf.len() <= self.limit {
            self.memory.extend_from_slice(buf);
            return Ok(buf.len());
        }
        // Past the limit: everything so far, and from now on, to a temporary file.
        let mut file = BufWriter::with_capacity(self.limit.max(8192), tempfile::tempfile()?);
        file.write_all(&self.memory)?;
        self.memory = Vec::new();
        let n = file.write(buf)?;
        self.file = Some(file);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// A spool's bytes, read back from their start as many times as needed.
#[derive(Debug)]
pub enum Spooled {
    Memory(Bytes),
    File(File),
}

impl Spooled {
    /// A reader of the bytes from their start.
    pub fn reader(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        match self {
            Spooled::Memory(bytes) => Ok(Box::new(&bytes[..])),
            Spooled::File(file) => {
                let mut handle = file.try_clone()?;
                handle.seek(SeekFrom::Start(0))?;
                Ok(Box::new(BufReader::with_capacity(SPOOL_MEMORY, handle)))
            }
        }
    }

    /// How many bytes, if they are in memory.
    pub fn len_in_memory(&self) -> Option<usize> {
        match self {
            Spooled::Memory(bytes) => Some(bytes.len()),
            Spooled::File(_) => None,
        }
    }

    /// Sends the bytes, from their start, as `Data` chunks of `chunk_bytes` (from a blocking
    /// thread). `Ok(false)` if the receiver went away.
    pub fn send(&mut self, chunk_bytes: usize, tx: &mpsc::Sender<Chunk>) -> std::io::Result<bool> {
        let file = match self {
            Spooled::Memory(bytes) => {
                let mut rest = bytes.clone();
                while !rest.is_empty() {
                    let chunk = rest.split_to(chunk_bytes.min(rest.len()));
                    if tx.blocking_send(Chunk::Data(chunk)).is_err() {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            Spooled::File(file) => file,
        };
        file.seek(SeekFrom::Start(0))?;
        loop {
            let mut buf = Vec::with_capacity(chunk_bytes);
            let n = Read::by_ref(file)
                .take(chunk_bytes as u64)
                .read_to_end(&mut buf)?;
            if n == 0 {
                return Ok(true);
            }
            if tx.blocking_send(Chunk::Data(Bytes::from(buf))).is_err() {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(limit: usize, parts: &[&[u8]]) -> Spooled {
        let mut spool = Spool::new(limit);
        for part in parts {
            spool.write_all(part).unwrap();
        }
        spool.finish().unwrap()
    }

    fn read_all(spooled: &Spooled) -> Vec<u8> {
        let mut out = Vec::new();
        spooled.reader().unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn small_spools_stay_in_memory_and_big_ones_go_to_a_file_whole() {
        let small = written(8, &[b"abc", b"defgh"]);
        assert_eq!(small.len_in_memory(), Some(8));
        assert_eq!(read_all(&small), b"abcdefgh");
        let big = written(8, &[b"abc", b"defgh", b"i", b"jklmnopqrstuvwxyz"]);
        assert_eq!(big.len_in_memory(), None);
        // Read back twice: each reader starts from the start.
        assert_eq!(read_all(&big), b"abcdefghijklmnopqrstuvwxyz");
        assert_eq!(read_all(&big), b"abcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn both_kinds_are_sent_in_chunks_from_their_start() {
        for limit in [1024, 4] {
            let mut spooled = written(limit, &[b"0123456789"]);
            let (tx, mut rx) = mpsc::channel(16);
            assert!(spooled.send(4, &tx).unwrap());
            drop(tx);
            let mut chunks = Vec::new();
            while let Some(Chunk::Data(bytes)) = rx.blocking_recv() {
                chunks.push(bytes.to_vec());
            }
            assert_eq!(chunks, [&b"0123"[..], b"4567", b"89"], "limit {limit}");
        }
    }
}
