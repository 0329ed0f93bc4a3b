//! The source map: every file of a repository with its line starts, so that a byte span
//! becomes a 1-based line and a 1-based column counted in characters (as editors count).

use codespan_reporting::files::{self, Files};
use mcpgate_grammar::Span;
use std::ops::Range;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// One file with its precomputed line starts.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    fn new(path: String, text: String) -> Source {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            path,
            text,
            line_starts,
        }
    }

    /// 0-based line index of a byte offset (clamped to the text).
    fn line_index(&self, byte: usize) -> usize {
        match self.line_starts.binary_search(&byte) {
            Ok(line) => line,
            Err(next) => next.saturating_sub(1),
        }
    }

    /// 1-based line and 1-based character column of a byte offset.
    pub fn line_col(&self, byte: usize) -> (u32, u32) {
        let byte = floor_char_boundary(&self.text, byte.min(self.text.len()));
        let line = self.line_index(byte);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let col = self.text.get(start..byte).map_or(0, |s| s.chars().count());
        (to_u32(line + 1), to_u32(col + 1))
    }

    /// The byte offset of a 1-based line and character column (clamped).
    pub fn offset_of(&self, line: u32, col: u32) -> usize {
        let Some(&start) = self.line_starts.get((line as usize).saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = self.text.get(start..).unwrap_or_default();
        let line_text = rest.split('\n').next().unwrap_or_default();
        let chars = (col as usize).saturating_sub(1);
        start
            + line_text
                .char_indices()
                .nth(chars)
                .map_or(line_text.len(), |(i, _)| i)
    }

    fn line_range(&self, line_index: usize) -> Option<Range<usize>> {
        let start = *self.line_starts.get(line_index)?;
        let end = self
            .line_starts
            .get(line_index + 1)
            .copied()
            .unwrap_or(self.text.len());
        Some(start..end)
    }
}

/// 1-based line and character column of a byte offset in `text`.
pub fn line_col(text: &str, byte: usize) -> (u32, u32) {
    let byte = floor_char_boundary(text, byte.min(text.len()));
    let before = text.get(..byte).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(start..).map_or(0, |s| s.chars().count()) + 1;
    (to_u32(line), to_u32(col))
}

/// The byte offset of a 1-based line and character column in `text` (clamped).
pub fn offset_of(text: &str, line: u32, col: u32) -> usize {
    let mut start = 0;
    for _ in 1..line.max(1) {
        match text.get(start..).and_then(|r| r.find('\n')) {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let line_text = text
        .get(start..)
        .unwrap_or_default()
        .split('\n')
        .next()
        .unwrap_or_default();
    start
        + line_text
            .char_indices()
            .nth((col as usize).saturating_sub(1))
            .map_or(line_text.len(), |(i, _)| i)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn to_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Every file of a repository, addressed by [`FileId`].
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<Source>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file and returns its id.
    pub fn add(&mut self, path: impl Into<String>, text: impl Into<String>) -> FileId {
        self.files.push(Source::new(path.into(), text.into()));
        FileId(to_u32(self.files.len() - 1))
    }

    pub fn get(&self, id: FileId) -> Option<&Source> {
        self.files.get(id.0 as usize)
    }

    pub fn path(&self, id: FileId) -> &str {
        self.get(id).map_or("", |s| s.path.as_str())
    }

    pub fn text(&self, id: FileId) -> &str {
        self.get(id).map_or("", |s| s.text.as_str())
    }

    /// Looks a file up by its repo-relative path.
    pub fn find(&self, path: &str) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.path == path)
            .map(|i| FileId(to_u32(i)))
    }

    /// 1-based line and character column of the start of `span`.
    pub fn line_col(&self, id: FileId, byte: usize) -> (u32, u32) {
        self.get(id).map_or((1, 1), |s| s.line_col(byte))
    }

    /// The IR location of the start of `span`.
    pub fn loc(&self, id: FileId, span: Span) -> crate::ir::SourceLoc {
        let (line, col) = self.line_col(id, span.start as usize);
        crate::ir::SourceLoc {
            file: self.path(id).to_owned(),
            line,
            col,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &Source)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, s)| (FileId(to_u32(i)), s))
    }
}

impl<'a> Files<'a> for SourceMap {
    type FileId = FileId;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: FileId) -> Result<&'a str, files::Error> {
        self.get(id)
            .map(|s| s.path.as_str())
            .ok_or(files::Error::FileMissing)
    }

    fn source(&'a self, id: FileId) -> Result<&'a str, files::Error> {
        self.get(id)
            .map(|s| s.text.as_str())
            .ok_or(files::Error::FileMissing)
    }

    fn line_index(&'a self, id: FileId, byte_index: usize) -> Result<usize, files::Error> {
        let s = self.get(id).ok_or(files::Error::FileMissing)?;
        Ok(s.line_index(byte_index))
    }

    fn line_range(&'a self, id: FileId, line_index: usize) -> Result<Range<usize>, files::Error> {
        let s = self.get(id).ok_or(files::Error::FileMissing)?;
        // codespan asks for the line just past the end when a span ends at EOF.
        if line_index == s.line_starts.len() {
            return Ok(s.text.len()..s.text.len());
        }
        s.line_range(line_index).ok_or(files::Error::LineTooLarge {
            given: line_index,
            max: s.line_starts.len().saturating_sub(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_character_columns() {
        let mut map = SourceMap::new();
        let id = map.add("a.mcpg", "ab\nçé x\n");
        assert_eq!(map.line_col(id, 0), (1, 1));
        assert_eq!(map.line_col(id, 3), (2, 1));
        // `x` is after two 2-byte characters and a space: byte 8, column 4.
        assert_eq!(map.line_col(id, 8), (2, 4));
        assert_eq!(map.get(id).map(|s| s.offset_of(2, 4)), Some(8));
        assert_eq!(map.line_col(id, 999), (3, 1));
    }
}
