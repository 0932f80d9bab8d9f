//! The Python virtualenv that `.ci/run` makes at .venv, for the tests that run real Python
//! clients (tests/python). Only paths here: how each test runs Python stays with that test.

use std::path::{Path, PathBuf};

/// The repository's root, where .venv and tests/python are.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's python (VENV_PYTHON names another, e.g. a checkout's that shares one);
/// panics saying how to make it when it is missing.
pub fn venv_python() -> PathBuf {
    let python = std::env::var_os("VENV_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run .ci/run (or `bash .ci/run`) once to create the Python virtualenv \
         with tests/python/requirements.txt",
        python.display()
    );
    python
}
