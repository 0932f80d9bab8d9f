//! Rates and medians over repetitions.

use std::time::Duration;

pub fn rate(messages: usize, took: Duration) -> f64 {
    messages as f64 / took.as_secs_f64()
}

/// The median of values sorted in ascending order.
pub fn median_of(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Median, lowest and highest of some repetitions' values.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// None when there are no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Spread {
            min: *sorted.first()?,
            max: *sorted.last()?,
            median: median_of(&sorted),
        })
    }
}

pub fn cpu_per_message(cpu: Option<Duration>, messages: usize) -> String {
    match cpu {
        Some(cpu) => format!("{:.1} µs", cpu.as_secs_f64() * 1e6 / messages as f64),
        None => "n/a".to_string(),
    }
}

/// `1234567` as `1,234,567`, as the reports write numbers.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
