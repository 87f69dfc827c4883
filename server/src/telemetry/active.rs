//! Distinct accounts seen in the last five minutes, in bounded memory.
//!
//! One sketch per minute (six kept: the current minute and the five before it). A sketch
//! stores the 64-bit hashes of the accounts it saw exactly while there are few of them, and
//! turns into a HyperLogLog (2^12 one-byte registers, about 1.6 % standard error) once
//! there are more than [`EXACT_UP_TO`]. The count over the window merges the sketches of
//! the minutes inside it: exact while every one of them is small, an estimate otherwise.
//! Memory is at most six sketches of 4 KiB (or `EXACT_UP_TO` hashes), whatever the traffic.
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The window counted.
pub const WINDOW_MINUTES: u64 = 5;
/// Hashes a minute keeps exactly before switching to registers.
const EXACT_UP_TO: usize = 512;
const P: u32 = 12;
const REGISTERS: usize = 1 << P;
/// Sketches kept: the window plus the minute in progress.
const SLOTS: usize = WINDOW_MINUTES as usize + 1;

enum Sketch {
    Exact(Vec<u64>),
    Registers(Box<[u8; REGISTERS]>),
}

impl Sketch {
    fn insert(&mut self, hash: u64) {
        match self {
            Sketch::Exact(hashes) => {
                if hashes.contains(&hash) {
                    return;
                }
                if hashes.len() < EXACT_UP_TO {
                    hashes.push(hash);
                    return;
                }
                let mut registers = Box::new([0u8; REGISTERS]);
                for h in hashes.iter() {
                    add_to(&mut registers, *h);
                }
                add_to(&mut registers, hash);
                *self = Sketch::Registers(registers);
            }
            Sketch::Registers(registers) => add_to(registers, hash),
        }
    }
}

fn add_to(registers: &mut [u8; REGISTERS], hash: u64) {
    let index = (hash >> (64 - P)) as usize;
    // Rank of the first 1 bit in the remaining 52 bits (a sentinel keeps it bounded).
    let rest = (hash << P) | (1 << (P - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    if registers[index] < rank {
        registers[index] = rank;
    }
}

fn estimate(registers: &[u8; REGISTERS]) -> u64 {
    let m = REGISTERS as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let mut sum = 0.0;
    let mut zeros = 0u32;
    for &r in registers.iter() {
        sum += 2f64.powi(-i32::from(r));
        if r == 0 {
            zeros += 1;
        }
    }
    let raw = alpha * m * m / sum;
    let value = if raw <= 2.5 * m && zeros > 0 {
        // Small range: linear counting.
        m * (m / f64::from(zeros)).ln()
    } else {
        raw
    };
    value.round() as u64
}

struct Slot {
    minute: u64,
    sketch: Sketch,
}

/// Accounts seen, per minute, over the last [`WINDOW_MINUTES`] minutes.
pub struct ActiveUsers {
    slots: Mutex<Vec<Slot>>,
}

impl Default for ActiveUsers {
    fn default() -> Self {
        Self {
            slots: Mutex::new(
                (0..SLOTS)
                    .map(|_| Slot {
                        minute: u64::MAX,
                        sketch: Sketch::Exact(Vec::new()),
                    })
                    .collect(),
            ),
        }
    }
}

fn current_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

fn hash_of(account: &uuid::Uuid) -> u64 {
    // SipHash with fixed keys: the same account always lands in the same register, and
    // uuid v7's time-ordered bits are spread evenly.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    account.hash(&mut hasher);
    hasher.finish()
}

impl ActiveUsers {
    /// Notes that `account` made a call now.
    pub fn saw(&self, account: &uuid::Uuid) {
        self.saw_at(hash_of(account), current_minute());
    }

    fn saw_at(&self, hash: u64, minute: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut slots[(minute % SLOTS as u64) as usize];
        if slot.minute != minute {
            slot.minute = minute;
            slot.sketch = Sketch::Exact(Vec::new());
        }
        slot.sketch.insert(hash);
    }

    /// Distinct accounts seen in the last [`WINDOW_MINUTES`] minutes (the current minute
    /// and the ones before it that are still inside the window).
    pub fn count(&self) -> u64 {
        self.count_at(current_minute())
    }

    fn count_at(&self, now: u64) -> u64 {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let recent = slots
            .iter()
            .filter(|s| s.minute != u64::MAX && s.minute <= now && now - s.minute < WINDOW_MINUTES);
        let mut exact: Vec<u64> = Vec::new();
        let mut registers: Option<Box<[u8; REGISTERS]>> = None;
        for slot in recent {
            match &slot.sketch {
                Sketch::Exact(hashes) => exact.extend_from_slice(hashes),
                Sketch::Registers(r) => {
                    let merged = registers.get_or_insert_with(|| Box::new([0u8; REGISTERS]));
                    for (m, v) in merged.iter_mut().zip(r.iter()) {
                        *m = (*m).max(*v);
                    }
                }
            }
        }
        match registers {
            None => {
                exact.sort_unstable();
                exact.dedup();
                exact.len() as u64
            }
            Some(mut merged) => {
                for h in exact {
                    add_to(&mut merged, h);
                }
                estimate(&merged)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        i.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn small_counts_are_exact_and_deduplicated_across_minutes() {
        let active = ActiveUsers::default();
        for minute in 100..103 {
            for i in 0..10 {
                active.saw_at(h(i), minute);
            }
        }
        active.saw_at(h(10), 102);
        assert_eq!(active.count_at(102), 11);
    }

    #[test]
    fn minutes_leave_the_window() {
        let active = ActiveUsers::default();
        active.saw_at(h(1), 100);
        active.saw_at(h(2), 101);
        active.saw_at(h(3), 104);
        assert_eq!(active.count_at(104), 3);
        assert_eq!(active.count_at(105), 2);
        assert_eq!(active.count_at(106), 1);
        assert_eq!(active.count_at(109), 0);
        // A slot reused six minutes later starts empty.
        active.saw_at(h(4), 106);
        assert_eq!(active.count_at(106), 2);
    }

    #[test]
    fn large_counts_are_estimated_within_a_few_percent_in_bounded_memory() {
        let active = ActiveUsers::default();
        let n = 50_000u64;
        for i in 0..n {
            // Spread over five minutes, every account seen twice.
            active.saw_at(h(i), 200 + i % 5);
            active.saw_at(h(i), 200 + (i + 1) % 5);
        }
        let counted = active.count_at(204) as f64;
        let error = (counted - n as f64).abs() / n as f64;
        assert!(error < 0.06, "counted {counted} of {n}");
        let slots = active.slots.lock().unwrap();
        assert!(
            slots
                .iter()
                .all(|s| matches!(s.sketch, Sketch::Registers(_)) || s.minute == u64::MAX)
        );
    }

    #[test]
    fn the_exact_to_registers_switch_keeps_the_count() {
        let active = ActiveUsers::default();
        for i in 0..(EXACT_UP_TO as u64 + 100) {
            active.saw_at(h(i), 7);
        }
        let counted = active.count_at(7) as f64;
        let n = (EXACT_UP_TO + 100) as f64;
        assert!((counted - n).abs() / n < 0.06, "counted {counted} of {n}");
    }
}
