//! The room ahead of the records in the current log file: what makes a record's sync cost
//! one data write and one flush, not a metadata write as well.
//!
//! - **Preallocated** (`fallocate`) in steps of [`PREALLOCATE`] bytes, so that a sync within
//!   the allocated part has no file size to write.
//! - **Zeroed ahead** (on ext4 and XFS): `fallocate` leaves *unwritten* extents, and the
//!   first write into each of their blocks turns it into a written one, a change of the
//!   file's metadata that the next `fdatasync` must write too (the inode's extents, or a
//!   journal commit where the file system keeps a journal). With records of
//!   a few hundred bytes that is one sync in four at one call at a time, and every sync
//!   under load. So zeros are written ahead of the records, [`ZERO_STEP`] bytes at a time
//!   while less than [`ZERO_AHEAD`] is zeroed: records then overwrite written blocks, and
//!   one sync per step carries the zeros' blocks and their conversion instead. PostgreSQL
//!   zero-fills its write-ahead log for the same reason. The zeros cost write bandwidth
//!   (each byte of the log is written twice); file systems that write every block anew
//!   (btrfs, ZFS) or keep no unwritten extents (tmpfs) are not zeroed.
//!
//! Measured (docs/PERFORMANCE.md): a `pwrite` + `fdatasync` of 4 KiB p50 135-150 us into
//! fallocated blocks, 89-101 us into zeroed ones.

use std::fs::File;

/// Bytes a log file is extended by ahead of its records.
pub const PREALLOCATE: u64 = 4 << 20;
/// Zeros are written while less than this is zeroed ahead of the records.
pub const ZERO_AHEAD: u64 = 1 << 20;
/// Bytes of zeros written at once: one sync in this many bytes of records carries them.
pub const ZERO_STEP: u64 = 256 << 10;
/// The file system's block: zeros start at a block the records have not reached.
const BLOCK: u64 = 4096;

/// One block of zeros: a step writes it repeated (one `pwritev`), so that no step-sized
/// buffer of zeros sits in the binary or in memory.
#[cfg(target_os = "linux")]
static ZERO_BLOCK: [u8; BLOCK as usize] = [0; BLOCK as usize];

/// The room ahead of the records of one log file.
#[derive(Debug)]
pub struct Space {
    /// Size of the file: records and the zeros after them.
    pub allocated: u64,
    /// The file's blocks up to here hold written data (records or zeros).
    zeroed: u64,
    /// `fallocate` works here (turned off at the first refusal).
    preallocate: bool,
    /// Zeros are written ahead on this file system (turned off at the first failure).
    zero: bool,
}

impl Space {
    /// The room of a new, empty file.
    pub fn new(file: &File) -> Space {
        Space {
            allocated: 0,
            zeroed: 0,
            preallocate: cfg!(target_os = "linux"),
            zero: has_unwritten_extents(file),
        }
    }

    /// A new, empty file on the same file system: what was learnt about it carries over.
    pub fn renew(&mut self) {
        self.allocated = 0;
        self.zeroed = 0;
    }

    /// Before records up to `end` are written: extends the preallocated part when they do
    /// not fit, in steps, but not much past `limit` (the size the file rotates at).
    pub fn reserve(&mut self, file: &File, end: u64, limit: u64) {
        if !self.preallocate || end <= self.allocated {
            return;
        }
        let to =
            (end.div_ceil(PREALLOCATE) * PREALLOCATE).min(end.max(limit.div_ceil(BLOCK) * BLOCK));
        match preallocate(file, self.allocated, to - self.allocated) {
            Ok(()) => self.allocated = to,
            Err(e) => {
                // Not supported here, or the file may not grow (a size limit): write
                // without; a write that cannot grow the file fails on its own.
                tracing::debug!(error = %e, "audit log files are not preallocated");
                self.preallocate = false;
            }
        }
    }

    /// After records up to `end` were written: writes the next step of zeros when less
    /// than [`ZERO_AHEAD`] is zeroed ahead of them, up to `limit` at most.
    pub fn written(&mut self, file: &File, end: u64, limit: u64) {
        self.allocated = self.allocated.max(end);
        if !self.zero {
            return;
        }
        let Some((from, to)) = zero_range(end, self.zeroed, limit) else {
            return;
        };
        match write_zeros(file, from, to) {
            Ok(()) => {
                self.zeroed = to;
                self.allocated = self.allocated.max(to);
            }
            Err(e) => {
                // The records are whole (the zeros come after them); only the speed-up is
                // lost. Part of the step may be written: counted, so leaving cuts it.
                tracing::debug!(error = %e, "audit log files are not zeroed ahead");
                self.allocated = self.allocated.max(to);
                self.zero = false;
            }
        }
    }

    /// The file was cut to `len` bytes (its records): nothing after them is allocated.
    pub fn cut(&mut self, len: u64) {
        self.allocated = len;
        self.zeroed = self.zeroed.min(len);
    }
}

/// Where the next zeros go once records end at `end`: from the first block after both the
/// records and the zeros written so far, one step long but not past `limit`; `None` while
/// [`ZERO_AHEAD`] is zeroed already, or at the limit. Never before `end`: zeros must not
/// overwrite a record.
fn zero_range(end: u64, zeroed: u64, limit: u64) -> Option<(u64, u64)> {
    if zeroed >= end.saturating_add(ZERO_AHEAD) {
        return None;
    }
    let from = zeroed.max(end.div_ceil(BLOCK) * BLOCK);
    let to = from
        .saturating_add(ZERO_STEP)
        .min(limit.div_ceil(BLOCK) * BLOCK);
    (to > from).then_some((from, to))
}

/// Whether `file` is on a file system that keeps allocated blocks unwritten until written
/// (ext4, XFS): there, zeroing ahead saves a metadata write per sync.
#[cfg(target_os = "linux")]
fn has_unwritten_extents(file: &File) -> bool {
    fs_kind(file).is_some_and(|kind| kind == EXT4 || kind == XFS)
}

/// `statfs`'s magic number of ext4 (and ext2/3, which share it).
#[cfg(target_os = "linux")]
const EXT4: i64 = 0xEF53;
/// `statfs`'s magic number of XFS.
#[cfg(target_os = "linux")]
const XFS: i64 = 0x5846_5342;

/// The magic number of the file system `file` is on.
#[cfg(target_os = "linux")]
fn fs_kind(file: &File) -> Option<i64> {
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(file).ok().map(|s| s.f_type as i64)
}

#[cfg(not(target_os = "linux"))]
fn has_unwritten_extents(_: &File) -> bool {
    false
}

/// Writes zeros over `from..to` of `file`.
#[cfg(target_os = "linux")]
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    const SLICES: usize = (ZERO_STEP / BLOCK) as usize;
    let mut at = from;
    while at < to {
        let left = usize::try_from(to - at).unwrap_or(usize::MAX);
        let count = left.div_ceil(ZERO_BLOCK.len()).min(SLICES);
        let mut slices = [std::io::IoSlice::new(&ZERO_BLOCK); SLICES];
        // The last block may be a part of one.
        let last = left - (count - 1) * ZERO_BLOCK.len();
        if last < ZERO_BLOCK.len() {
            slices[count - 1] = std::io::IoSlice::new(&ZERO_BLOCK[..last]);
        }
        match rustix::io::pwritev(file, &slices[..count], at) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n as u64,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn write_zeros(_: &File, _: u64, _: u64) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Extends `file` to `offset + len` bytes of allocated zeros.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), offset, len)
        .map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn preallocate(_: &File, _: u64, _: u64) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::FileExt;

    #[test]
    fn zeros_start_after_the_records_block_and_keep_a_step_ahead() {
        let limit = 64 << 20;
        // A new file: zeros from the block after the first record.
        assert_eq!(zero_range(700, 0, limit), Some((BLOCK, BLOCK + ZERO_STEP)));
        // Records ending on a block boundary: the next block.
        assert_eq!(
            zero_range(BLOCK, 0, limit),
            Some((BLOCK, BLOCK + ZERO_STEP))
        );
        // Zeroed ahead already: after what is zeroed.
        let zeroed = BLOCK + ZERO_STEP;
        assert_eq!(
            zero_range(2000, zeroed, limit),
            Some((zeroed, zeroed + ZERO_STEP))
        );
        // Enough ahead: nothing.
        assert_eq!(zero_range(1000, 1000 + ZERO_AHEAD, limit), None);
        // Records that outran the zeros (a large batch): after the records, never over them.
        let (from, _) = zero_range(3 * ZERO_STEP + 5, ZERO_STEP, limit).unwrap();
        assert!(from >= 3 * ZERO_STEP + 5 && from % BLOCK == 0);
        // Not past the size the file rotates at.
        assert_eq!(
            zero_range(limit - 5 * BLOCK, limit - 3 * BLOCK, limit),
            Some((limit - 3 * BLOCK, limit))
        );
        assert_eq!(zero_range(limit - 100, limit, limit), None);
    }

    /// An empty file in a fresh folder (kept while the folder lives).
    fn new_file() -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = File::create(&path).unwrap();
        (dir, path, file)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn zeros_cover_exactly_their_range_whatever_its_length() {
        let (_dir, path, file) = new_file();
        let len = 3 * ZERO_STEP as usize;
        file.write_all_at(&vec![b'x'; len], 0).unwrap();
        // Longer than one pwritev, ending inside a block, starting inside one.
        let (from, to) = (100u64, ZERO_STEP + 2 * BLOCK + 7);
        write_zeros(&file, from, to).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), len);
        for (i, b) in bytes.iter().enumerate() {
            let zeroed = (from..to).contains(&(i as u64));
            assert_eq!(*b == 0, zeroed, "byte {i}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn zeros_never_reach_the_records_and_keep_the_file_readable() {
        let (_dir, path, file) = new_file();
        let mut space = Space::new(&file);
        // Forced on, wherever the test runs: the bytes must come out the same.
        space.zero = true;
        let mut len = 0u64;
        let mut expected = Vec::new();
        // Batches of every size around the steps, a large one outrunning the zeros included.
        for n in [1usize, 700, 4096, 5000, 300_000, 9, 1_100_000, 3] {
            let batch: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let end = len + n as u64;
            space.reserve(&file, end, 64 << 20);
            file.write_all_at(&batch, len).unwrap();
            space.written(&file, end, 64 << 20);
            expected.extend_from_slice(&batch);
            len = end;
            assert_eq!(space.zeroed % BLOCK, 0);
        }
        // Each write adds one step: a few more catch up with the large batch.
        for _ in 0..8 {
            space.written(&file, len, 64 << 20);
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..expected.len()], &expected[..], "records intact");
        assert!(
            bytes[expected.len()..].iter().all(|b| *b == 0),
            "zeros after"
        );
        assert!(space.zeroed >= len + ZERO_AHEAD, "zeroed ahead");
        assert_eq!(bytes.len() as u64, space.allocated);
    }

    /// The point of zeroing: once synced, the zeroed blocks are written extents, and the
    /// rest of what `fallocate` reserved is still unwritten (`filefrag -v` reads the
    /// extents and their flags).
    #[cfg(target_os = "linux")]
    #[test]
    fn zeroed_blocks_are_written_extents_once_synced() {
        let (_dir, path, file) = new_file();
        let mut space = Space::new(&file);
        let kind = fs_kind(&file).unwrap();
        assert_eq!(
            space.zero,
            kind == EXT4 || kind == XFS,
            "file system {kind:#x}"
        );
        if !space.zero {
            return;
        }
        let record = [b'r'; 700];
        space.reserve(&file, 700, 64 << 20);
        file.write_all_at(&record, 0).unwrap();
        space.written(&file, 700, 64 << 20);
        file.sync_data().unwrap();
        let zeroed = space.zeroed / BLOCK;
        assert_eq!(zeroed, (BLOCK + ZERO_STEP) / BLOCK);
        assert_eq!(space.allocated, PREALLOCATE);
        let unwritten = unwritten_blocks(&path);
        assert!(
            (0..zeroed).all(|b| !unwritten(b)),
            "the zeroed blocks are written"
        );
        assert!(
            (zeroed..PREALLOCATE / BLOCK).all(&unwritten),
            "the blocks after them are still unwritten"
        );
    }

    /// Which blocks of `path` are in unwritten extents, from `filefrag -v`.
    #[cfg(target_os = "linux")]
    fn unwritten_blocks(path: &std::path::Path) -> impl Fn(u64) -> bool {
        // In /usr/sbin, which a user's PATH may not name.
        let out = ["filefrag", "/usr/sbin/filefrag", "/sbin/filefrag"]
            .iter()
            .find_map(|bin| {
                std::process::Command::new(bin)
                    .arg("-v")
                    .arg(path)
                    .output()
                    .ok()
            })
            .expect("filefrag (e2fsprogs) runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Lines like `   1:       65..    1023:    4524097..   4525055:    959:   last,unwritten,eof`.
        let ranges: Vec<(u64, u64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("unwritten"))
            .filter_map(|l| {
                let logical = l.split(':').nth(1)?;
                let (a, b) = logical.split_once("..")?;
                Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
            })
            .collect();
        move |block| ranges.iter().any(|(a, b)| (*a..=*b).contains(&block))
    }
}
