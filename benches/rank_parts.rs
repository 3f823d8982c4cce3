//! The rank core's parts, each as the least thread CPU time over many runs, with the
//! allocations each makes: criterion's means move by 15 to 30% between runs on these machines,
//! which hides a change of a few per cent; the least CPU time of a part does not move so.
//! The same 10,000-PoP catalogue as `cargo bench --bench rank`.
//!
//!     cargo bench --bench rank_parts -- [RUNS]     (default 300)
//!
//! Prints the least and the median time of each part of a run of the whole: parse and validate
//! (`Catalog::from_json`), endpoints (no DNS), score and sort (`rank`), freeing the ranking,
//! and their sum, and the whole's wall-clock time; then `rank` alone on warm input, and a
//! borrowed serde_json parse of the same document into `&str` fields (nothing owned, nothing
//! checked): the floor of a parse. To compare two versions of the code, build each and run
//! them alternately.

#[path = "support/rank_catalogue.rs"]
mod rank_catalogue;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use popsel::catalog::Catalog;
use popsel::rank::rank;
use serde::Deserialize;

use rank_catalogue::{POPS, SITE, catalogue_json, probes, surveyed};

/// Counts allocations. A load and a store, not a locked add: the benchmark runs on one thread,
/// and a locked instruction per allocation cost more than a tenth of a millisecond here.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn count() {
    ALLOCATIONS.store(ALLOCATIONS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// CPU time of this thread: time the scheduler gave to others does not count.
fn cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    assert!(ok, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The times of a part over the runs, and the allocations of its last run.
struct Part {
    times: Vec<Duration>,
    allocations: u64,
}

impl Part {
    fn new() -> Self {
        Part {
            times: Vec::new(),
            allocations: 0,
        }
    }

    /// Runs `part`, keeping its time; returns what it returned.
    fn time<T>(&mut self, part: impl FnOnce() -> T) -> T {
        let (allocated, start) = (allocations(), cpu());
        let out = part();
        self.times.push(cpu() - start);
        self.allocations = allocations() - allocated;
        out
    }

    fn least(&self) -> Duration {
        self.times.iter().copied().min().unwrap_or_default()
    }

    fn median(&self) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

fn main() {
    let runs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(300);
    let text = catalogue_json();
    let catalog = Catalog::from_json(&text).expect("catalogue");
    assert_eq!(catalog.pops.len(), POPS);
    let probes = std::sync::Arc::new(probes(&catalog));

    let [mut parse, mut endpoints, mut score, mut free] = [(); 4].map(|()| Part::new());
    let mut wall = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let catalog = parse.time(|| Catalog::from_json(black_box(&text)).expect("catalogue"));
        let pops = endpoints.time(|| surveyed(catalog.pops));
        let ranking = score.time(|| rank(SITE, pops, Some(probes.clone()), catalog.skipped));
        free.time(|| drop(black_box(ranking)));
        wall.push(start.elapsed());
    }
    wall.sort_unstable();
    let mut alone = Part::new();
    let warm = surveyed(catalog.pops.clone());
    for _ in 0..runs {
        let pops = warm.clone();
        let ranking = alone.time(|| rank(SITE, pops, Some(probes.clone()), Vec::new()));
        drop(black_box(ranking));
    }
    let mut floor = Part::new();
    for _ in 0..runs {
        floor.time(|| {
            let document: BorrowedDocument =
                serde_json::from_str(black_box(&text)).expect("document");
            drop(black_box(document));
        });
    }

    println!(
        "{POPS} PoPs, {} bytes; thread CPU time over {runs} runs: least, median (allocations)",
        text.len()
    );
    let parts = [
        ("parse + validate", &parse),
        ("endpoints", &endpoints),
        ("score + sort", &score),
        ("free the ranking", &free),
    ];
    for (name, part) in parts {
        print_part(name, part, "");
    }
    let sum = |of: fn(&Part) -> Duration| parts.iter().map(|(_, p)| of(p)).sum::<Duration>();
    println!(
        "  {:<18} {:>8.3} ms {:>8.3} ms",
        "sum",
        ms(sum(Part::least)),
        ms(sum(Part::median))
    );
    println!(
        "  {:<18} {:>8.3} ms {:>8.3} ms  (wall clock, as criterion measures)",
        "the whole",
        ms(wall.first().copied().unwrap_or_default()),
        ms(wall.get(runs / 2).copied().unwrap_or_default())
    );
    print_part("score + sort, warm", &alone, "");
    print_part(
        "parse floor",
        &floor,
        "; serde_json into &str fields, freed",
    );
}

fn print_part(name: &str, part: &Part, note: &str) {
    println!(
        "  {name:<18} {:>8.3} ms {:>8.3} ms  ({}{note})",
        ms(part.least()),
        ms(part.median()),
        part.allocations
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The catalogue's shape borrowed from the text: nothing owned but the lists, nothing checked.
#[derive(Deserialize)]
struct BorrowedDocument<'a> {
    #[serde(rename = "ipSecLocations", borrow)]
    _countries: Vec<BorrowedCountry<'a>>,
}

#[derive(Deserialize)]
struct BorrowedCountry<'a> {
    #[serde(rename = "country")]
    _country: &'a str,
    #[serde(rename = "locations", borrow)]
    _locations: Vec<BorrowedLocation<'a>>,
}

#[derive(Deserialize)]
struct BorrowedLocation<'a> {
    #[serde(rename = "city")]
    _city: &'a str,
    #[serde(rename = "latitude")]
    _latitude: &'a str,
    #[serde(rename = "longitude")]
    _longitude: &'a str,
    #[serde(rename = "provider")]
    _provider: &'a str,
    #[serde(rename = "fqdn", borrow)]
    _fqdn: Vec<BorrowedFqdn<'a>>,
}

#[derive(Deserialize)]
struct BorrowedFqdn<'a> {
    #[serde(rename = "name")]
    _name: &'a str,
    #[serde(rename = "ip", borrow)]
    _ip: Vec<&'a str>,
}
