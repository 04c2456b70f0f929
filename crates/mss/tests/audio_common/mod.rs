//! What the call tests hear: a WAV recording read back, the power of a tone in it
//! (Goertzel), and the check that a phone heard the other side's tone for most of a call.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

/// How long a call of the audio tests stays up once both phones send audio.
pub const TALK: Duration = Duration::from_secs(4);

/// A WAV recording's samples (mono 16-bit PCM, as pjsua2's recorder writes) and rate.
pub struct Recording {
    pub rate: u32,
    pub samples: Vec<i16>,
}

/// Reads a RIFF/WAVE file of 16-bit PCM; the `data` chunk is read to the end of the file
/// when its size was never filled in.
pub fn read_wav(path: &Path) -> Recording {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "{} is not a WAV file",
        path.display()
    );
    let (mut rate, mut channels, mut bits) = (0u32, 0u16, 0u16);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = at + 8;
        if id == b"fmt " {
            channels = u16::from_le_bytes(bytes[body + 2..body + 4].try_into().unwrap());
            rate = u32::from_le_bytes(bytes[body + 4..body + 8].try_into().unwrap());
            bits = u16::from_le_bytes(bytes[body + 14..body + 16].try_into().unwrap());
        } else if id == b"data" {
            assert_eq!((channels, bits), (1, 16), "{}: mono 16-bit", path.display());
            let end = if size == 0 || body + size > bytes.len() {
                bytes.len()
            } else {
                body + size
            };
            let samples = bytes[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Recording { rate, samples };
        }
        at = body + size + (size & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// The power of frequency `f` in `x` (Goertzel), per sample.
pub fn goertzel(x: &[i16], rate: u32, f: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (x.len() as f64).powi(2)
}

/// How many 100 ms blocks of `r` have `want` Hz as their clearly dominant tone (ten
/// times the power of `other` Hz and loud enough to be a tone, not noise), and how many
/// blocks there are.
pub fn tone_blocks(r: &Recording, want: f64, other: f64) -> (usize, usize) {
    let block = (r.rate / 10) as usize;
    let blocks: Vec<&[i16]> = r.samples.chunks_exact(block).collect();
    let hits = blocks
        .iter()
        .filter(|b| {
            let (p_want, p_other) = (goertzel(b, r.rate, want), goertzel(b, r.rate, other));
            // A tone of amplitude A has power A²/4 here; 100 is an amplitude of 20 of 32767.
            p_want > 100.0 && p_want > 10.0 * p_other
        })
        .count();
    (hits, blocks.len())
}

/// Each 100 ms block of `r` as one character: `W` when `want` Hz dominates it, `o` when
/// `other` Hz does, `.` for neither (silence, noise, another tone): where in a call the
/// audio went missing.
pub fn timeline(r: &Recording, want: f64, other: f64) -> String {
    let block = (r.rate / 10) as usize;
    r.samples
        .chunks_exact(block)
        .map(|b| {
            let (w, o) = (goertzel(b, r.rate, want), goertzel(b, r.rate, other));
            if w > 100.0 && w > 10.0 * o {
                'W'
            } else if o > 100.0 && o > 10.0 * w {
                'o'
            } else {
                '.'
            }
        })
        .collect()
}

/// Checks that recording `path` carries `want` Hz (not `other`) for most of `TALK`.
pub fn assert_hears(path: &Path, want: f64, other: f64, who: &str) {
    let r = read_wav(path);
    let seconds = r.samples.len() as f64 / f64::from(r.rate);
    let (hits, blocks) = tone_blocks(&r, want, other);
    eprintln!(
        "{}: {seconds:.1} s at {} Hz, {hits}/{blocks} blocks of {want} Hz: {}",
        path.display(),
        r.rate,
        timeline(&r, want, other)
    );
    assert!(
        seconds >= TALK.as_secs_f64(),
        "{who}: the recording lasts {seconds:.1} s, the call at least {TALK:?}"
    );
    let talk_blocks = usize::try_from(TALK.as_millis() / 100).unwrap();
    assert!(
        hits * 10 >= talk_blocks * 8,
        "{who}: only {hits} blocks of 100 ms carry {want} Hz (of {blocks}; the call had {talk_blocks} at least); \
         per block (W {want} Hz, o {other} Hz): {}",
        timeline(&r, want, other)
    );
}
