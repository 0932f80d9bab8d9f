//! One error for a file a user wrote or recorded (a lesson, a trace) that cannot be used:
//! `path:line:col: message`, or `path: message` when the problem has no place in the file.
//!
//! It knows nothing of what the file holds; the readers (`lesson::load`, `trace`) word the
//! message. It may import only the standard library, thiserror and serde_yaml.

use std::fmt;
use std::path::{Path, PathBuf};

/// A file that cannot be used, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}", .path.display(), Place(.location), .message)]
pub struct FileError {
    pub path: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub location: Option<(usize, usize)>,
    /// What was expected, or what went wrong.
    pub message: String,
}

impl FileError {
    /// A problem at `(line, column)` of the file.
    pub fn at(path: &Path, location: (usize, usize), message: impl Into<String>) -> FileError {
        FileError {
            path: path.to_path_buf(),
            location: Some(location),
            message: message.into(),
        }
    }

    /// A problem with the file as a whole (it cannot be read, say).
    pub fn whole(path: &Path, message: impl Into<String>) -> FileError {
        FileError {
            path: path.to_path_buf(),
            location: None,
            message: message.into(),
        }
    }

    /// Lists and mappings nested deeper than `max` at `location`: refused before parsing,
    /// because deep nesting costs serde_yaml time out of proportion to its size.
    pub fn too_deep(path: &Path, location: (usize, usize), max: usize) -> FileError {
        FileError::at(
            path,
            location,
            format!(
                "expected at most {max} lists and mappings inside each other, found deeper \
                 nesting here"
            ),
        )
    }

    /// serde_yaml's error in a text that starts on line `first_line` of the file. Its
    /// " at line L column C" leaves the message, since the place goes in front; without a
    /// place the text's start is blamed.
    pub fn from_yaml(error: &serde_yaml::Error, path: &Path, first_line: usize) -> FileError {
        let mut message = error.to_string();
        let location = error.location().map(|l| (l.line(), l.column()));
        if let Some((line, column)) = location {
            let suffix = format!(" at line {line} column {column}");
            if let Some(i) = message.find(&suffix) {
                message.replace_range(i..i + suffix.len(), "");
            }
        }
        let (line, column) = location.unwrap_or((1, 1));
        FileError::at(path, (first_line + line - 1, column), message)
    }
}

/// `:line:col`, or nothing for a file as a whole.
struct Place<'a>(&'a Option<(usize, usize)>);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, column)) => write!(f, ":{line}:{column}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_place_goes_between_path_and_message() {
        let path = Path::new("lessons/a.yaml");
        assert_eq!(
            FileError::at(path, (3, 7), "expected a list").to_string(),
            "lessons/a.yaml:3:7: expected a list"
        );
        assert_eq!(
            FileError::whole(path, "cannot read the file").to_string(),
            "lessons/a.yaml: cannot read the file"
        );
    }

    #[test]
    fn yaml_errors_lose_their_own_place_and_count_from_the_first_line() {
        let error = serde_yaml::from_str::<Vec<u32>>("- 1\n- x\n").unwrap_err();
        let e = FileError::from_yaml(&error, Path::new("t.yaml"), 10);
        assert_eq!(e.location, Some((11, 3)));
        assert!(!e.message.contains(" at line "), "{e}");
    }
}
