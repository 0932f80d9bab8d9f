//! One run of the real `rabbitscope doctor --format json`, its report read the way a script
//! reads it: the checks found, their objects and what each says was seen, and the exit code.

use serde_json::Value;

#[derive(Debug)]
pub struct Report {
    pub code: i32,
    pub json: Value,
    pub stderr: String,
}

impl Report {
    pub fn checks(&self) -> Vec<String> {
        self.findings()
            .iter()
            .map(|f| f["check"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn findings(&self) -> Vec<Value> {
        self.json["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn finding(&self, check: &str) -> Value {
        self.findings()
            .into_iter()
            .find(|f| f["check"] == check)
            .unwrap_or_else(|| panic!("no {check} in {:#}", self.json))
    }

    /// What the finding of `check` says was seen.
    pub fn seen(&self, check: &str) -> String {
        self.finding(check)["seen"].as_str().unwrap().to_string()
    }

    pub fn objects(&self, check: &str) -> Vec<String> {
        let f = self.finding(check);
        serde_json::from_value(f["objects"].clone()).unwrap()
    }
}

/// `rabbitscope doctor --format json ARGS`, waited for.
pub fn doctor<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Report {
    let output = super::process::rabbitscope()
        .arg("doctor")
        .arg("--format")
        .arg("json")
        .args(args)
        .output()
        .unwrap();
    Report {
        code: output.status.code().unwrap_or(-1),
        json: serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}
