//! How fast the view animates, whether it is paused, and whether a replayed trace has played
//! its last event. A replayed trace follows the pause and the speed (see
//! [`crate::source::Playback`]); a live source only animates slower or faster.
//!
//! It may not reach into the rest of the app.

use std::time::Duration;

/// How long a message takes to fly across the graph at speed 1.
const FLIGHT_TIME: f64 = 1.2;

#[derive(Debug)]
pub struct PlaybackView {
    pub paused: bool,
    /// Animation speed factor, 1.0 = normal.
    pub speed: f64,
    /// A replayed trace has played its last event.
    pub ended: bool,
}

impl Default for PlaybackView {
    fn default() -> Self {
        PlaybackView {
            paused: false,
            speed: 1.0,
            ended: false,
        }
    }
}

impl PlaybackView {
    pub fn toggle_pause(&mut self) {
        self.paused = !self.paused;
    }

    /// One and a half times faster, up to 8: returns the flight time that goes with it.
    pub fn faster(&mut self) -> Duration {
        self.speed = (self.speed * 1.5).min(8.0);
        self.flight_time()
    }

    /// One and a half times slower, down to 1/8: returns the flight time that goes with it.
    pub fn slower(&mut self) -> Duration {
        self.speed = (self.speed / 1.5).max(0.125);
        self.flight_time()
    }

    fn flight_time(&self) -> Duration {
        Duration::from_secs_f64(FLIGHT_TIME / self.speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_speed_stays_between_an_eighth_and_eight() {
        let mut playback = PlaybackView::default();
        for _ in 0..10 {
            playback.faster();
        }
        assert_eq!(playback.speed, 8.0);
        assert_eq!(playback.faster(), Duration::from_secs_f64(1.2 / 8.0));
        for _ in 0..20 {
            playback.slower();
        }
        assert_eq!(playback.speed, 0.125);
        assert_eq!(playback.slower(), Duration::from_secs_f64(1.2 / 0.125));
    }
}
