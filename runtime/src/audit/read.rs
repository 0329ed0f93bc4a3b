//! Reading a log back: its files in order, and their lines with positions, telling
//! complete lines from a torn tail.

use crate::audit::writer;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// One line of a log file.
#[derive(Clone, Debug)]
pub struct Line {
    /// Index into the file list.
    pub file: usize,
    /// 1-based line number.
    pub line: usize,
    pub text: String,
    /// Ended by a newline; a line without one is a write cut short.
    pub complete: bool,
}

/// Zero bytes end a file's records: a log file is preallocated, and its tail stays zeros
/// until records fill it. What comes before them is the file's last line.
fn cut_zeros(buf: &mut Vec<u8>) {
    let end = buf.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    buf.truncate(end);
}

/// The files of a log: every log file of a folder, in order, or one file.
///
/// # Errors
/// When the path cannot be read or holds no log.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let files = writer::log_files(path)
        .map_err(|e| format!("cannot read the audit folder `{}`: {e}", path.display()))?;
    if files.is_empty() {
        return Err(format!("no audit log files in `{}`", path.display()));
    }
    Ok(files)
}

/// Calls `each` for every line of `files`, in order.
///
/// # Errors
/// When a file cannot be read.
pub fn for_each_line(files: &[PathBuf], mut each: impl FnMut(Line)) -> Result<(), String> {
    for (index, path) in files.iter().enumerate() {
        let f = std::fs::File::open(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
        let mut reader = std::io::BufReader::new(f);
        let mut buf = Vec::new();
        let mut number = 0;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| format!("`{}`: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            let complete = buf.last() == Some(&b'\n');
            if complete {
                buf.pop();
            } else {
                cut_zeros(&mut buf);
                if buf.is_empty() {
                    break;
                }
            }
            number += 1;
            each(Line {
                file: index,
                line: number,
                text: String::from_utf8_lossy(&buf).into_owned(),
                complete,
            });
        }
    }
    Ok(())
}

/// The file name of `path`, for messages.
pub fn name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .map_or_else(|| path.display().to_string(), str::to_owned)
}
