//! Mixing concurrent talkers: samples are summed in 32 bits and clamped, so two loud talkers
//! saturate instead of wrapping around into noise.

/// Add `input` into the 32-bit accumulator `acc`.
pub fn accumulate(acc: &mut [i32], input: &[i16]) {
    for (a, s) in acc.iter_mut().zip(input) {
        *a += *s as i32;
    }
}

/// The accumulator as 16-bit samples, clamped.
pub fn finish(acc: &[i32], out: &mut [i16]) {
    for (o, a) in out.iter_mut().zip(acc) {
        *o = (*a).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_saturates_without_wrapping() {
        let mut acc = vec![0i32; 4];
        accumulate(&mut acc, &[1000, 30_000, -30_000, 5]);
        accumulate(&mut acc, &[-500, 10_000, -10_000, 5]);
        let mut out = vec![0i16; 4];
        finish(&acc, &mut out);
        assert_eq!(out, vec![500, i16::MAX, i16::MIN, 10]);
    }
}
