//! A thin safe layer over the bundled libopus (`opusic-sys`), for what the `opus` crate does not
//! reach: the decoder's complexity (which switches on libopus 1.5+'s deep PLC and OSCE), and
//! DRED (deep redundancy: the encoder's duration, the decoder's parse and decode).
//!
//! Every handle is owned, freed on drop, and used from one thread at a time (`Send`, not
//! `Sync`). Every length passed to C is the length of the Rust slice it describes.

use std::ffi::{c_int, CStr};
use std::ptr::NonNull;

use opusic_sys as ffi;

pub use ffi::{
    OPUS_GET_LOOKAHEAD_REQUEST, OPUS_SET_BITRATE_REQUEST, OPUS_SET_COMPLEXITY_REQUEST,
    OPUS_SET_DRED_DURATION_REQUEST, OPUS_SET_INBAND_FEC_REQUEST, OPUS_SET_PACKET_LOSS_PERC_REQUEST,
};

/// A libopus error code with its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpusError(pub c_int);

impl std::fmt::Display for OpusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: opus_strerror returns a pointer to a static NUL-terminated string for any code.
        let text = unsafe { CStr::from_ptr(ffi::opus_strerror(self.0)) };
        write!(f, "{}", text.to_string_lossy())
    }
}

fn check(code: c_int) -> Result<c_int, OpusError> {
    if code < 0 {
        Err(OpusError(code))
    } else {
        Ok(code)
    }
}

/// The libopus version string, e.g. "libopus 1.6.1".
pub fn version() -> String {
    // SAFETY: a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::opus_get_version_string()) }
        .to_string_lossy()
        .into_owned()
}

/// Whether `packet` carries in-band FEC (LBRR) data for the frame before it.
pub fn packet_has_lbrr(packet: &[u8]) -> bool {
    let Ok(len) = i32::try_from(packet.len()) else {
        return false;
    };
    // SAFETY: the pointer and length describe `packet`.
    unsafe { ffi::opus_packet_has_lbrr(packet.as_ptr(), len) > 0 }
}

pub struct RawEncoder(NonNull<ffi::OpusEncoder>);

// SAFETY: the encoder state is plain memory owned by this handle; libopus keeps no thread-local
// or shared state for it.
unsafe impl Send for RawEncoder {}

impl RawEncoder {
    /// A mono VOIP encoder at `sample_rate`.
    pub fn voip_mono(sample_rate: i32) -> Result<Self, OpusError> {
        let mut error: c_int = 0;
        // SAFETY: plain values and a valid out-pointer for the error.
        let ptr = unsafe {
            ffi::opus_encoder_create(sample_rate, 1, ffi::OPUS_APPLICATION_VOIP, &mut error)
        };
        check(error)?;
        NonNull::new(ptr)
            .map(Self)
            .ok_or(OpusError(ffi::OPUS_ALLOC_FAIL))
    }

    /// A `SET` request that takes one 32-bit integer.
    pub fn set(&mut self, request: c_int, value: i32) -> Result<(), OpusError> {
        // SAFETY: every SET request used here takes exactly one opus_int32.
        check(unsafe { ffi::opus_encoder_ctl(self.0.as_ptr(), request, value) }).map(|_| ())
    }

    /// A `GET` request that writes one 32-bit integer.
    pub fn get(&mut self, request: c_int) -> Result<i32, OpusError> {
        let mut value: i32 = 0;
        // SAFETY: every GET request used here writes exactly one opus_int32 through the pointer.
        check(unsafe { ffi::opus_encoder_ctl(self.0.as_ptr(), request, &mut value as *mut i32) })?;
        Ok(value)
    }

    /// Encode one frame (`pcm.len()` samples) into `out`; returns the packet's length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        let frame = c_int::try_from(pcm.len()).map_err(|_| OpusError(ffi::OPUS_BAD_ARG))?;
        let max = i32::try_from(out.len()).map_err(|_| OpusError(ffi::OPUS_BAD_ARG))?;
        // SAFETY: the pointers and lengths describe `pcm` and `out`.
        let n = unsafe {
            ffi::opus_encode(self.0.as_ptr(), pcm.as_ptr(), frame, out.as_mut_ptr(), max)
        };
        check(n).map(|n| n as usize)
    }
}

impl Drop for RawEncoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { ffi::opus_encoder_destroy(self.0.as_ptr()) }
    }
}

pub struct RawDecoder(NonNull<ffi::OpusDecoder>);

// SAFETY: as for the encoder.
unsafe impl Send for RawDecoder {}

impl RawDecoder {
    pub fn mono(sample_rate: i32) -> Result<Self, OpusError> {
        let mut error: c_int = 0;
        // SAFETY: plain values and a valid out-pointer for the error.
        let ptr = unsafe { ffi::opus_decoder_create(sample_rate, 1, &mut error) };
        check(error)?;
        NonNull::new(ptr)
            .map(Self)
            .ok_or(OpusError(ffi::OPUS_ALLOC_FAIL))
    }

    pub fn set(&mut self, request: c_int, value: i32) -> Result<(), OpusError> {
        // SAFETY: every SET request used here takes exactly one opus_int32.
        check(unsafe { ffi::opus_decoder_ctl(self.0.as_ptr(), request, value) }).map(|_| ())
    }

    /// Decode `packet` (or conceal, for `None`) into `out`; `fec` decodes the packet's in-band
    /// FEC copy of the frame before it instead. Returns the samples written.
    pub fn decode(
        &mut self,
        packet: Option<&[u8]>,
        out: &mut [i16],
        fec: bool,
    ) -> Result<usize, OpusError> {
        let frame = c_int::try_from(out.len()).map_err(|_| OpusError(ffi::OPUS_BAD_ARG))?;
        let (data, len) = match packet {
            Some(p) => (
                p.as_ptr(),
                i32::try_from(p.len()).map_err(|_| OpusError(ffi::OPUS_BAD_ARG))?,
            ),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: the pointers and lengths describe `packet` (or NULL/0 for loss) and `out`.
        let n = unsafe {
            ffi::opus_decode(
                self.0.as_ptr(),
                data,
                len,
                out.as_mut_ptr(),
                frame,
                c_int::from(fec),
            )
        };
        check(n).map(|n| n as usize)
    }

    /// Decode `out.len()` samples of what `dred` holds, ending `offset` samples before the
    /// start of the packet it was parsed from.
    pub fn decode_dred(
        &mut self,
        dred: &DredParser,
        offset: i32,
        out: &mut [i16],
    ) -> Result<usize, OpusError> {
        let frame = i32::try_from(out.len()).map_err(|_| OpusError(ffi::OPUS_BAD_ARG))?;
        // SAFETY: `dred.dred` was filled by opus_dred_parse; `out` is `frame` samples long.
        let n = unsafe {
            ffi::opus_decoder_dred_decode(
                self.0.as_ptr(),
                dred.dred.as_ptr(),
                offset,
                out.as_mut_ptr(),
                frame,
            )
        };
        check(n).map(|n| n as usize)
    }
}

impl Drop for RawDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { ffi::opus_decoder_destroy(self.0.as_ptr()) }
    }
}

/// DRED's decoder side: reads the deep redundancy a packet carries.
pub struct DredParser {
    decoder: NonNull<ffi::OpusDREDDecoder>,
    dred: NonNull<ffi::OpusDRED>,
}

// SAFETY: as for the encoder.
unsafe impl Send for DredParser {}

impl DredParser {
    /// Fails with "unimplemented" when libopus was built without DRED.
    pub fn new() -> Result<Self, OpusError> {
        let mut error: c_int = 0;
        // SAFETY: a valid out-pointer for the error.
        let decoder = unsafe { ffi::opus_dred_decoder_create(&mut error) };
        check(error)?;
        let decoder = NonNull::new(decoder).ok_or(OpusError(ffi::OPUS_ALLOC_FAIL))?;
        // SAFETY: a valid out-pointer for the error.
        let dred = unsafe { ffi::opus_dred_alloc(&mut error) };
        let dred = match (check(error), NonNull::new(dred)) {
            (Ok(_), Some(dred)) => dred,
            (result, dred) => {
                // SAFETY: created above, destroyed once; `dred` freed if it was allocated.
                unsafe {
                    ffi::opus_dred_decoder_destroy(decoder.as_ptr());
                    if let Some(dred) = dred {
                        ffi::opus_dred_free(dred.as_ptr());
                    }
                }
                return Err(result.err().unwrap_or(OpusError(ffi::OPUS_ALLOC_FAIL)));
            }
        };
        Ok(Self { decoder, dred })
    }

    /// Parse the DRED data in `packet`, at most `max_samples` of it. Returns how many samples
    /// before the packet's start it covers (0: none).
    pub fn parse(
        &mut self,
        packet: &[u8],
        max_samples: i32,
        sample_rate: i32,
    ) -> Result<i32, OpusError> {
        let len = i32::try_from(packet.len()).map_err(|_| OpusError(ffi::OPUS_BAD_ARG))?;
        let mut end: c_int = 0;
        // SAFETY: the pointer and length describe `packet`; the handles are live.
        let n = unsafe {
            ffi::opus_dred_parse(
                self.decoder.as_ptr(),
                self.dred.as_ptr(),
                packet.as_ptr(),
                len,
                max_samples,
                sample_rate,
                &mut end,
                0,
            )
        };
        check(n)
    }
}

impl Drop for DredParser {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        unsafe {
            ffi::opus_dred_free(self.dred.as_ptr());
            ffi::opus_dred_decoder_destroy(self.decoder.as_ptr());
        }
    }
}
