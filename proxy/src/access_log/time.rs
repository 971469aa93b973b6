//! The time of a log line, formatted once per second per worker (as nginx caches its time
//! strings): `$time_local` (`02/Dec/2026:08:30:48 +0000`) for `combined` and ISO 8601
//! (`2026-12-02T08:30:48+00:00`, nginx's `$time_iso8601`) for `json`, both in local time.

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The cached strings of one second.
#[derive(Debug, Clone)]
pub struct Now {
    /// The Unix second they are for (`u64::MAX`: none yet).
    second: u64,
    local: [u8; 26],
    iso: [u8; 25],
}

impl Default for Now {
    fn default() -> Self {
        Self {
            second: u64::MAX,
            local: [b' '; 26],
            iso: [b' '; 25],
        }
    }
}

// === impl Now ===

impl Now {
    /// Brings the strings up to the current second (the clock read is a vDSO call, no
    /// syscall; the conversion runs once a second).
    pub fn refresh(&mut self) {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if second != self.second {
            self.set(second);
        }
    }

    /// Formats `second` (Unix time) in the local time zone.
    pub fn set(&mut self, second: u64) {
        let (fields, offset_s) = local_time(second);
        self.second = second;
        self.local = format_local(&fields, offset_s);
        self.iso = format_iso(&fields, offset_s);
    }

    /// `02/Dec/2026:08:30:48 +0000`
    pub fn local(&self) -> &[u8] {
        &self.local
    }

    /// `2026-12-02T08:30:48+00:00`
    pub fn iso8601(&self) -> &[u8] {
        &self.iso
    }
}

/// Calendar fields of a local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub year: i32,
    /// 1..=12
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// `second` in the local time zone, and the zone's offset from UTC in seconds.
fn local_time(second: u64) -> (Fields, i64) {
    let t = second as libc::time_t;
    // SAFETY: `tm` is plain data, zeroed is a valid value; localtime_r only writes into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return (utc_fields(second), 0);
    }
    (
        Fields {
            year: tm.tm_year + 1900,
            month: (tm.tm_mon + 1) as u8,
            day: tm.tm_mday as u8,
            hour: tm.tm_hour as u8,
            minute: tm.tm_min as u8,
            second: tm.tm_sec as u8,
        },
        tm.tm_gmtoff,
    )
}

/// UTC calendar fields of a Unix second (civil-from-days).
pub fn utc_fields(second: u64) -> Fields {
    let days = (second / 86_400) as i64;
    let rem = second % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    Fields {
        year,
        month,
        day,
        hour: (rem / 3600) as u8,
        minute: (rem / 60 % 60) as u8,
        second: (rem % 60) as u8,
    }
}

fn two(out: &mut [u8], n: u8) {
    out[0] = b'0' + n / 10;
    out[1] = b'0' + n % 10;
}

fn four(out: &mut [u8], n: i32) {
    let n = n.clamp(0, 9999) as u16;
    out[0] = b'0' + (n / 1000) as u8;
    out[1] = b'0' + (n / 100 % 10) as u8;
    out[2] = b'0' + (n / 10 % 10) as u8;
    out[3] = b'0' + (n % 10) as u8;
}

/// `+0100`-style offset parts: sign, hours, minutes.
fn offset(offset_s: i64) -> (u8, u8, u8) {
    let sign = if offset_s < 0 { b'-' } else { b'+' };
    let m = offset_s.unsigned_abs() / 60;
    (sign, (m / 60) as u8, (m % 60) as u8)
}

/// `02/Dec/2026:08:30:48 +0000`
pub fn format_local(f: &Fields, offset_s: i64) -> [u8; 26] {
    let mut o = *b"00/Jan/0000:00:00:00 +0000";
    two(&mut o[0..2], f.day);
    o[3..6].copy_from_slice(MONTHS[usize::from(f.month.clamp(1, 12) - 1)]);
    four(&mut o[7..11], f.year);
    two(&mut o[12..14], f.hour);
    two(&mut o[15..17], f.minute);
    two(&mut o[18..20], f.second);
    let (sign, h, m) = offset(offset_s);
    o[21] = sign;
    two(&mut o[22..24], h);
    two(&mut o[24..26], m);
    o
}

/// `2026-12-02T08:30:48+00:00`
pub fn format_iso(f: &Fields, offset_s: i64) -> [u8; 25] {
    let mut o = *b"0000-00-00T00:00:00+00:00";
    four(&mut o[0..4], f.year);
    two(&mut o[5..7], f.month);
    two(&mut o[8..10], f.day);
    two(&mut o[11..13], f.hour);
    two(&mut o[14..16], f.minute);
    two(&mut o[17..19], f.second);
    let (sign, h, m) = offset(offset_s);
    o[19] = sign;
    two(&mut o[20..22], h);
    two(&mut o[23..25], m);
    o
}
