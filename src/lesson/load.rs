//! Reading lesson files: YAML into [`Lesson`], then the checks YAML cannot express
//! (`validate`), each error with the file, line and column it is about. The line and
//! column of a node are found by walking serde_yaml to it ([`locate`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::schema::Lesson;
use super::validate::validate;

/// A lesson file that cannot be used, and why: `file:line:col: expected ...`.
pub type LessonError = crate::file_error::FileError;

/// How deeply a lesson's lists and mappings may nest. The deepest lesson shipped nests 12;
/// deeper text only costs time (see [`crate::nesting`]).
pub const MAX_NESTING: usize = 64;

/// Reads one lesson file.
pub fn load_file(path: &Path) -> Result<Lesson, LessonError> {
    let bytes = std::fs::read(path)
        .map_err(|e| LessonError::whole(path, format!("cannot read the file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
        LessonError::at(path, (line, column + 1), "expected UTF-8 text")
    })?;
    load_str(&text, path)
}

/// Parses and validates a lesson; `path` names it in errors.
pub fn load_str(text: &str, path: &Path) -> Result<Lesson, LessonError> {
    if let Some(location) = crate::nesting::deeper_than(text, MAX_NESTING) {
        return Err(LessonError::too_deep(path, location, MAX_NESTING));
    }
    if matches!(serde_yaml::from_str(text), Ok(serde_yaml::Value::Null)) {
        return Err(LessonError::at(
            path,
            (1, 1),
            "expected a lesson (a mapping with `id`, `order`, `title` and `steps`), found nothing",
        ));
    }
    let mut lesson: Lesson =
        serde_yaml::from_str(text).map_err(|e| LessonError::from_yaml(&e, path, 1))?;
    lesson.source = path.to_path_buf();
    if let Err(problem) = validate(&lesson).and_then(|()| super::replay::check(&lesson)) {
        let location = locate_nearest(text, &problem.at).unwrap_or((1, 1));
        return Err(LessonError::at(path, location, problem.message));
    }
    Ok(lesson)
}

/// Every `*.yaml` file in `dir`, each loaded on its own, plus the errors of the directory as a
/// whole (no such directory, two lessons with one id). Lessons come sorted by `order`, then id.
pub fn load_each(dir: &Path) -> (Vec<Lesson>, Vec<LessonError>) {
    let mut errors = Vec::new();
    let files = match lesson_files(dir) {
        Ok(files) => files,
        Err(e) => {
            return (
                Vec::new(),
                vec![LessonError::whole(
                    dir,
                    format!("cannot read the directory: {e}"),
                )],
            )
        }
    };
    let mut lessons = Vec::new();
    for file in files {
        match load_file(&file) {
            Ok(lesson) => lessons.push(lesson),
            Err(e) => errors.push(e),
        }
    }
    let mut first_with_id: HashMap<String, PathBuf> = HashMap::new();
    let mut unique = Vec::new();
    for lesson in lessons {
        if let Some(first) = first_with_id.get(&lesson.id) {
            let text = std::fs::read_to_string(&lesson.source).unwrap_or_default();
            errors.push(LessonError {
                location: locate_nearest(&text, &[Seg::Key("id")]),
                path: lesson.source.clone(),
                message: format!(
                    "expected a unique id, but `{}` is also the id of {}",
                    lesson.id,
                    first.display()
                ),
            });
        } else {
            first_with_id.insert(lesson.id.clone(), lesson.source.clone());
            unique.push(lesson);
        }
    }
    unique.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.id.cmp(&b.id)));
    (unique, errors)
}

/// Every lesson in `dir`, sorted by `order`; any broken file or repeated id fails the whole.
pub fn load_dir(dir: &Path) -> Result<Vec<Lesson>, Vec<LessonError>> {
    let (lessons, errors) = load_each(dir);
    if errors.is_empty() {
        Ok(lessons)
    } else {
        Err(errors)
    }
}

/// The `*.yaml` files directly in `dir`, sorted by name.
pub fn lesson_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "yaml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

// ---------------------------------------------------------------------------------------------
// Finding a node's place in the file
// ---------------------------------------------------------------------------------------------

/// One step of a path into the YAML document: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Owned(String),
    Index(usize),
}

const PROBE_HIT: &str = "rabbitscope: probe reached its node";

/// The line and column of the node at `path`, or of its nearest ancestor that exists.
pub fn locate_nearest(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    (0..=path.len())
        .rev()
        .find_map(|len| locate(text, &path[..len]))
}

/// The line and column of the node at `path`. serde_yaml keeps no positions in values, but it
/// stamps an error with the position of the node being read: so walk to the node and fail there.
pub fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    match (Probe { path }).deserialize(deserializer) {
        Err(e) if e.to_string().contains(PROBE_HIT) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

struct Probe<'p, 'a> {
    path: &'p [Seg<'a>],
}

impl<'de> DeserializeSeed<'de> for Probe<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(PROBE_HIT));
        };
        let wanted = match first {
            Seg::Key(k) => *k,
            Seg::Owned(k) => k.as_str(),
            Seg::Index(_) => return Ok(()),
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            if key.as_str() == Some(wanted) {
                return map.next_value_seed(Probe { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(PROBE_HIT));
        };
        let Seg::Index(wanted) = first else {
            return Ok(());
        };
        let mut index = 0;
        loop {
            if index == *wanted {
                return seq.next_element_seed(Probe { path: rest }).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<(), A::Error> {
        self.scalar()
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

impl Probe<'_, '_> {
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(PROBE_HIT))
        } else {
            Ok(())
        }
    }
}
