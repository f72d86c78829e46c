//! The durable watermark: a small file, outside sled, that records how far the embedded log is
//! known to have reached on disk (the last durable sequence and the digest of the event stored
//! there). The flusher rewrites it after every group-commit flush, before any client is answered.
//!
//! sled recovers a damaged database to its last intact segment and silently drops what follows;
//! the watermark is the independent record that makes such a loss loud. At open, a recovered log
//! that ends before the watermark, or holds another event at its sequence, is refused
//! ([`Verdict`]) instead of served.
//!
//! File layout: two 64-byte slots, at offsets 0 and [`SLOT_STRIDE`] (different disk sectors),
//! written alternately, each `magic(8) generation(8) sequence(8) digest(32) check(8)` where
//! `check` is the first 8 bytes of SHA-256 over the 56 bytes before it. A torn write can only
//! damage the slot being written; the other still holds the previous mark. The valid slot with
//! the higher generation wins.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The file name of the watermark inside a data directory.
pub const WATERMARK_FILE: &str = "log.watermark";

const MAGIC: &[u8; 8] = b"RSTRWM01";
const SLOT_LEN: usize = 64;
/// Slots sit in different 512-byte sectors, so one torn sector write damages one slot at most.
const SLOT_STRIDE: u64 = 512;

/// How far the log reached: its last durable sequence and the digest of that event's stored
/// bytes (all zero when the log is empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Mark {
    pub sequence: u64,
    pub digest: [u8; 32],
}

impl Mark {
    /// The mark of the event stored as `bytes` at `sequence`.
    pub fn of(sequence: u64, bytes: &[u8]) -> Self {
        Self {
            sequence,
            digest: Sha256::digest(bytes).into(),
        }
    }
}

/// What the recovered log is, measured against the watermark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No watermark yet (a new data directory, or one written before watermarks existed).
    Unmarked,
    /// The log holds the marked event, and maybe more (written after the last mark).
    Intact { marked: u64 },
    /// The log ends before the marked sequence: acknowledged events were lost.
    Truncated { marked: u64, recovered: u64 },
    /// The log holds another event (or an unreadable one) at the marked sequence.
    Diverged { sequence: u64 },
}

/// The watermark file, open for updates.
#[derive(Debug)]
pub struct Watermark {
    file: File,
    path: PathBuf,
    generation: u64,
    current: Option<Mark>,
}

impl Watermark {
    /// Opens (creating it, mode 0600) the watermark at `path` and reads its current mark.
    /// An unreadable watermark (both slots damaged) is an error: it cannot vouch for the log.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path)?;
        let length = file.metadata()?.len();
        let mut best: Option<(u64, Mark)> = None;
        let mut damaged = 0;
        for slot in 0..2u64 {
            let mut bytes = [0u8; SLOT_LEN];
            let offset = slot * SLOT_STRIDE;
            if offset + SLOT_LEN as u64 > length {
                continue;
            }
            file.read_exact_at(&mut bytes, offset)?;
            if bytes == [0u8; SLOT_LEN] {
                continue;
            }
            match decode_slot(&bytes) {
                Some((generation, mark)) => {
                    if best.is_none_or(|(seen, _)| generation > seen) {
                        best = Some((generation, mark));
                    }
                }
                None => damaged += 1,
            }
        }
        if best.is_none() && damaged > 0 {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                format!(
                    "the log watermark {} is damaged; run `roster check` to inspect the log",
                    path.display()
                ),
            ));
        }
        Ok(Self {
            file,
            path: path.to_owned(),
            generation: best.map_or(0, |(generation, _)| generation),
            current: best.map(|(_, mark)| mark),
        })
    }

    /// The last mark written, `None` for a new watermark.
    pub fn mark(&self) -> Option<Mark> {
        self.current
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `mark` durably (written to the older slot, then `fdatasync`).
    pub fn record(&mut self, mark: Mark) -> std::io::Result<()> {
        let generation = self.generation + 1;
        let slot = generation % 2;
        self.file
            .write_all_at(&encode_slot(generation, &mark), slot * SLOT_STRIDE)?;
        self.file.sync_data()?;
        self.generation = generation;
        self.current = Some(mark);
        Ok(())
    }

    /// Judges a recovered log whose last sequence is `recovered`; `stored(sequence)` returns the
    /// stored bytes of the event at a sequence (or `None` when it is missing or unreadable).
    pub fn verdict(&self, recovered: u64, stored: impl FnOnce(u64) -> Option<Vec<u8>>) -> Verdict {
        let Some(mark) = self.current else {
            return Verdict::Unmarked;
        };
        if mark.sequence == 0 {
            return Verdict::Intact { marked: 0 };
        }
        if recovered < mark.sequence {
            return Verdict::Truncated {
                marked: mark.sequence,
                recovered,
            };
        }
        match stored(mark.sequence) {
            Some(bytes) if Mark::of(mark.sequence, &bytes) == mark => Verdict::Intact {
                marked: mark.sequence,
            },
            _ => Verdict::Diverged {
                sequence: mark.sequence,
            },
        }
    }
}

fn encode_slot(generation: u64, mark: &Mark) -> [u8; SLOT_LEN] {
    let mut bytes = [0u8; SLOT_LEN];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..16].copy_from_slice(&generation.to_be_bytes());
    bytes[16..24].copy_from_slice(&mark.sequence.to_be_bytes());
    bytes[24..56].copy_from_slice(&mark.digest);
    let check = Sha256::digest(&bytes[..56]);
    bytes[56..].copy_from_slice(&check[..8]);
    bytes
}

fn decode_slot(bytes: &[u8; SLOT_LEN]) -> Option<(u64, Mark)> {
    if &bytes[..8] != MAGIC || Sha256::digest(&bytes[..56])[..8] != bytes[56..] {
        return None;
    }
    let generation = u64::from_be_bytes(bytes[8..16].try_into().ok()?);
    let sequence = u64::from_be_bytes(bytes[16..24].try_into().ok()?);
    let digest = bytes[24..56].try_into().ok()?;
    Some((generation, Mark { sequence, digest }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_survives_reopening_and_the_newer_slot_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WATERMARK_FILE);
        let mut watermark = Watermark::open(&path).unwrap();
        assert_eq!(watermark.mark(), None);
        watermark.record(Mark::of(7, b"seven")).unwrap();
        watermark.record(Mark::of(9, b"nine")).unwrap();
        let reopened = Watermark::open(&path).unwrap();
        assert_eq!(reopened.mark(), Some(Mark::of(9, b"nine")));
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_other_and_two_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WATERMARK_FILE);
        let mut watermark = Watermark::open(&path).unwrap();
        watermark.record(Mark::of(7, b"seven")).unwrap(); // generation 1: slot 1
        watermark.record(Mark::of(9, b"nine")).unwrap(); // generation 2: slot 0
        drop(watermark);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"garbage!", 30).unwrap();
        let reopened = Watermark::open(&path).unwrap();
        assert_eq!(reopened.mark(), Some(Mark::of(7, b"seven")));
        file.write_all_at(b"garbage!", SLOT_STRIDE + 30).unwrap();
        let error = Watermark::open(&path).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidData);
    }

    #[test]
    fn verdicts() {
        let dir = tempfile::tempdir().unwrap();
        let mut watermark = Watermark::open(&dir.path().join(WATERMARK_FILE)).unwrap();
        assert_eq!(watermark.verdict(5, |_| None), Verdict::Unmarked);
        watermark.record(Mark::of(5, b"five")).unwrap();
        let stored = |sequence: u64| (sequence == 5).then(|| b"five".to_vec());
        assert_eq!(watermark.verdict(9, stored), Verdict::Intact { marked: 5 });
        assert_eq!(
            watermark.verdict(4, stored),
            Verdict::Truncated {
                marked: 5,
                recovered: 4
            }
        );
        assert_eq!(
            watermark.verdict(5, |_| Some(b"FIVE".to_vec())),
            Verdict::Diverged { sequence: 5 }
        );
    }
}
