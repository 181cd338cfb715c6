//! A bounded mutation fuzzer over the shipped example, a user template and the legacy
//! serverctrl files (stable Rust, no extra crates). For a fixed time budget it mutates
//! them with tokens known to break parsers and generated files, runs hhlctl's core on
//! each input and asserts: no panic, every input answered within a second (or 40
//! times the unmutated example's time, re-measured as it goes, on a loaded machine), accepted
//! inputs render files no value could add a line to, and (checked through the real
//! binary for a sample) nothing is written on refusal. The corpus under
//! tests/fuzz-corpus/ (inputs that once broke something) is replayed first, every run.
//!
//! `HHL_FUZZ_SECS` sets the budget (default 20), `HHL_FUZZ_SEED` the seed (default:
//! from the clock, printed so a failure can be replayed).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hhlctl::core::artifact::Content;
use hhlctl::core::legacy::import::{self, File};
use support::{repo, Sandbox};

/// Tokens that have broken parsers or generated files somewhere.
const TOKENS: &[&str] = &[
    "\n",
    "\r\n",
    "\"",
    "'",
    "\\",
    "$",
    "$host",
    "%",
    "%n",
    ";",
    "{",
    "}",
    "#",
    ": ",
    "- ",
    "[",
    "]",
    "{{",
    "}}",
    "{{{x}}}",
    "{{&x}}",
    "{{> hhl_main}}",
    "{{> x}}",
    "{{#each hhl}}",
    "{{/each}}",
    "{{#*inline \"p\"}}",
    "{{lookup hhl 'x'}}",
    "(",
    "!tag ",
    "!!str ",
    "&a ",
    "*a",
    "<<: *a",
    "---\n",
    "...\n",
    "null",
    "~",
    "true",
    "0",
    "-1",
    "0%",
    "99999999999999999999",
    ".inf",
    ".nan",
    "\0",
    "\u{7f}",
    "\u{2028}",
    "é",
    "ü",
    "..",
    "/",
    "//",
    "/.",
    "../../",
    "/dev/zero",
    "root",
    "nobody",
    "master",
    "dev1",
    "_snippet",
    "ExecStartPre=+/bin/sh",
    "include /etc/shadow;",
    "\t",
    " ",
    "\u{feff}",
    "port",
    "template",
    "values",
    "builtin:redis",
    "builtin:x",
    "shared: true",
    "__import__('os')",
    "$PORT",
    "${PORT}",
    "{'a': 1}",
    "[[[[",
    "{{{{",
    "'''",
    "\"\"\"",
];

/// xorshift64*: deterministic from the seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One to four random edits of `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(9) {
            0..=2 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                b.splice(at..at, t.iter().copied());
            }
            3 => {
                let end = (at + rng.below(40)).min(b.len());
                b.drain(at..end);
            }
            4 => {
                // Repeat a token many times: depth, length and count limits.
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let n = [10, 100, 1000, 20_000][rng.below(4)];
                let rep: Vec<u8> = t.iter().copied().cycle().take(t.len() * n).collect();
                b.splice(at..at, rep);
            }
            5 => {
                // Duplicate a line.
                let start = b[..at].iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
                let end = b[at..].iter().position(|&c| c == b'\n').map_or(b.len(), |i| at + i + 1);
                let line = b[start..end].to_vec();
                b.splice(end..end, line);
            }
            6 => {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] = [0xff, 0xc3, 0x80, b'\n', b' ', b'"', b'\''][rng.below(7)];
                }
            }
            7 => {
                // Replace the rest of a line (a value) with a token.
                let end = b[at..].iter().position(|&c| c == b'\n').map_or(b.len(), |i| at + i);
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                b.splice(at..end, t.iter().copied());
            }
            _ => {
                // Indent or dedent a line.
                let start = b[..at].iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
                if rng.below(2) == 0 {
                    b.splice(start..start, *b"  ");
                } else if b.get(start) == Some(&b' ') {
                    b.remove(start);
                }
            }
        }
    }
    b
}

/// What one input is.
#[derive(Clone)]
enum Input {
    /// hhl.yaml bytes (its templates are the built-ins and `t.hbs`).
    Yaml(Vec<u8>),
    /// The user template `t.hbs`, with the example's hhl.yaml pointing at it.
    Template(Vec<u8>),
    /// A legacy file (name, bytes) replacing the original one.
    Legacy(String, Vec<u8>),
}

/// The example the fuzzer mutates: Debian's flavor, and without the `_snippet` values,
/// which are raw nginx text by design (any line they add is theirs to add), so the
/// line-count check holds for every other value.
fn fuzzed_example() -> String {
    let yaml: String = support::example_yaml()
        .replace("flavor: auto", "flavor: debian")
        .lines()
        .filter(|l| !l.trim_start().split(':').next().unwrap_or("").ends_with("_snippet"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!yaml.contains("_snippet:"), "the fuzzed example has no snippets");
    yaml
}

/// Lines of the built-in templates' optional blocks that an input may leave out: one
/// `lua_shared_dict` line and the two lines of the owner's Redis port.
const OPTIONAL_LINES: usize = 3;

struct Fixture {
    dir: tempfile::TempDir,
    yaml: String,
    template: String,
    legacy: Vec<File>,
    /// Line counts of every rendered config and drop-in of the unmutated inputs.
    line_counts: BTreeSet<usize>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let yaml = fuzzed_example();
        let template = fs::read_to_string(repo().join("templates/dtserver.conf.hbs")).unwrap();
        fs::write(dir.path().join("t.hbs"), &template).unwrap();
        let legacy_dir = repo().join("tests/legacy/serverctrl");
        let mut legacy: Vec<File> = fs::read_dir(&legacy_dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                File {
                    name: PathBuf::from(e.file_name()),
                    text: fs::read_to_string(e.path()).unwrap(),
                }
            })
            .collect();
        legacy.sort_by(|a, b| a.name.cmp(&b.name));
        let mut f = Fixture {
            dir,
            yaml,
            template,
            legacy,
            line_counts: BTreeSet::new(),
        };
        for input in [
            Input::Yaml(f.yaml.clone().into_bytes()),
            Input::Template(f.template.clone().into_bytes()),
        ] {
            let counts = f.run(&input).expect("the unmutated inputs render");
            f.line_counts.extend(counts);
        }
        f
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("hhl.yaml")
    }

    /// Run the core on `input`: `Some(line counts of rendered configs)` when it was
    /// accepted, `None` when refused. Panics propagate.
    fn run(&self, input: &Input) -> Option<Vec<usize>> {
        match input {
            Input::Yaml(bytes) => self.run_yaml(bytes.clone(), None),
            Input::Template(bytes) => {
                let yaml = self.yaml.replace("builtin:dtserver", "t.hbs");
                self.run_yaml(yaml.into_bytes(), Some(bytes))
            }
            Input::Legacy(name, bytes) => {
                let mut files = self.legacy.clone();
                let text = String::from_utf8_lossy(bytes).into_owned();
                match files.iter_mut().find(|f| f.name == Path::new(name)) {
                    Some(f) => f.text = text,
                    None => files.push(File {
                        name: name.into(),
                        text,
                    }),
                }
                import::import(Path::new("/serverctrl"), &files)
                    .ok()
                    .map(|_| Vec::new())
            }
        }
    }

    fn run_yaml(&self, bytes: Vec<u8>, template: Option<&Vec<u8>>) -> Option<Vec<usize>> {
        // Each input gets its own template file name, so runs never share state.
        let text = hhlctl::core::config::text_of(&self.config_path(), bytes).ok()?;
        let text = match template {
            Some(t) => {
                let name = format!("t{}.hbs", t.len() % 1000);
                fs::write(self.dir.path().join(&name), t).unwrap();
                text.replace("t.hbs", &name)
            }
            None => text,
        };
        let loaded = hhlctl::host::load::load_text(self.config_path(), text).ok()?;
        let artifacts = loaded.render().ok()?;
        let mut counts = Vec::new();
        for a in &artifacts {
            if let Content::File(b) = &a.content {
                let p = a.path.to_string_lossy();
                // No value may bring a control character other than newline and tab.
                if let Some(c) = String::from_utf8_lossy(b)
                    .chars()
                    .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
                {
                    panic!("{p} holds control character U+{:04X}", c as u32);
                }
                // The rsyslog rules grow with the instances, wherever paths: puts them.
                if p.ends_with(".conf") && a.path != loaded.model.paths.rsyslog_conf {
                    counts.push(b.iter().filter(|&&c| c == b'\n').count());
                }
            }
        }
        Some(counts)
    }
}

fn corpus() -> Vec<(PathBuf, Input)> {
    let dir = repo().join("tests/fuzz-corpus");
    let mut out = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let bytes = fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let input = if name.ends_with(".yaml") {
            Input::Yaml(bytes)
        } else if name.ends_with(".hbs") {
            Input::Template(bytes)
        } else if let Some(legacy) = name.split_once("--").map(|(_, l)| l.to_string()) {
            Input::Legacy(legacy, bytes)
        } else {
            continue;
        };
        out.push((p, input));
    }
    out
}

/// Through the real binary: a refused config leaves no output directory behind.
fn nothing_written_on_refusal(bytes: &[u8]) {
    let sb = Sandbox::new();
    fs::write(sb.path().join("hhl.yaml"), bytes).unwrap();
    let r = sb.run(&["render", "--out", "out"]);
    if r.code != 0 {
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            !sb.path().join("out").exists(),
            "refused, yet wrote out/:\n{}",
            r.stderr
        );
        let leftovers: Vec<_> = fs::read_dir(sb.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "hhl.yaml")
            .collect();
        assert!(leftovers.is_empty(), "refused, yet left {leftovers:?}");
        assert!(r.stderr.len() < 64 << 10, "{} bytes of errors", r.stderr.len());
    }
}

#[test]
fn fuzz_core_with_mutations() {
    let budget = Duration::from_secs(
        std::env::var("HHL_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let seed = std::env::var("HHL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("fuzz: seed {seed} (HHL_FUZZ_SEED={seed} replays this run), budget {budget:?}");

    let (tx, rx) = mpsc::channel::<(String, Duration, bool)>();
    let (input_tx, input_rx) = mpsc::channel::<Input>();
    // Inputs run on a worker so a hang is seen (and reported) by the main thread.
    let worker = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let fixture = Fixture::new();
            let counts = fixture.line_counts.clone();
            for input in input_rx {
                let label = match &input {
                    Input::Yaml(b) => format!("hhl.yaml of {} bytes", b.len()),
                    Input::Template(b) => format!("template of {} bytes", b.len()),
                    Input::Legacy(n, b) => format!("legacy {n} of {} bytes", b.len()),
                };
                let t = Instant::now();
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fixture.run(&input)));
                let took = t.elapsed();
                match out {
                    Err(_) => {
                        tx.send((format!("PANIC on {label}"), took, false)).ok();
                        return;
                    }
                    Ok(Some(lines)) => {
                        // Only hhl.yaml mutations keep the templates, and so the line counts.
                        let fixed = matches!(input, Input::Yaml(_));
                        let label = label.clone();
                        // The built-in templates' optional blocks ({{#if}}: a shared dict, the
                        // owner's Redis port) may be left out by a mutation, taking up to
                        // OPTIONAL_LINES lines away; a value can never add one.
                        let shaped = |n: &usize| counts.iter().any(|c| n <= c && c - n <= OPTIONAL_LINES);
                        if let Some(n) = lines.iter().find(|n| fixed && !shaped(n)) {
                            tx.send((format!("{label}: a rendered config has {n} lines, not one of {counts:?} (or up to {OPTIONAL_LINES} fewer): a value added lines"), took, false)).ok();
                            return;
                        }
                        tx.send((label, took, true)).ok();
                    }
                    Ok(None) => {
                        tx.send((label, took, false)).ok();
                    }
                }
            }
        })
        .unwrap();

    let fixture_inputs = {
        let yaml = fuzzed_example().into_bytes();
        let template = fs::read(repo().join("templates/dtserver.conf.hbs")).unwrap();
        let legacy: Vec<(String, Vec<u8>)> = fs::read_dir(repo().join("tests/legacy/serverctrl"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        (yaml, template, legacy)
    };

    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut runs, mut accepted, mut slowest) = (0usize, 0usize, Duration::ZERO);
    let mut slowest_label = String::new();
    let mut binary_checks = 0usize;
    let replay = corpus();
    let replayed = replay.len();
    let mut queue = replay
        .into_iter()
        .map(|(_, i)| i)
        .collect::<std::collections::VecDeque<_>>();
    // The time of the unmutated example, re-measured every 50 inputs: the limit per
    // input is a second, or 40 times that when the machine is loaded (CI shares cores).
    let mut baselines: std::collections::VecDeque<Duration> = std::collections::VecDeque::new();
    let mut limit = Duration::from_secs(1);
    let mut n = 0usize;
    while started.elapsed() < budget || !queue.is_empty() {
        if n % 50 == 0 {
            input_tx.send(Input::Yaml(fixture_inputs.0.clone())).unwrap();
            let (_, took, ok) = rx.recv_timeout(Duration::from_secs(60)).expect("the example renders");
            assert!(ok, "the unmutated example is accepted");
            baselines.push_back(took);
            if baselines.len() > 3 {
                baselines.pop_front();
            }
            let base = baselines.iter().max().copied().unwrap_or_default();
            limit = Duration::from_secs(1).max(base * 40);
        }
        n += 1;
        let input = queue.pop_front().unwrap_or_else(|| match rng.below(10) {
            0..=5 => Input::Yaml(mutate(&mut rng, &fixture_inputs.0)),
            6 | 7 => Input::Template(mutate(&mut rng, &fixture_inputs.1)),
            _ => {
                let (name, bytes) = &fixture_inputs.2[rng.below(fixture_inputs.2.len())];
                Input::Legacy(name.clone(), mutate(&mut rng, bytes))
            }
        });
        let keep = input.clone();
        input_tx.send(input).unwrap();
        let (label, took, ok) = match rx.recv_timeout(limit * 10) {
            Ok(r) => r,
            Err(_) => {
                save_failure(&keep);
                panic!(
                    "an input ran for more than {:?} (hang); saved under target/fuzz-failures",
                    limit * 10
                );
            }
        };
        if label.starts_with("PANIC") || label.contains("added lines") {
            save_failure(&keep);
            panic!("{label}; saved under target/fuzz-failures (seed {seed})");
        }
        if took > limit {
            save_failure(&keep);
            panic!("{label} took {took:?}, over {limit:?} (the example took {baselines:?}); saved under target/fuzz-failures (seed {seed})");
        }
        runs += 1;
        accepted += usize::from(ok);
        if took > Duration::from_millis(300) && std::env::var_os("HHL_FUZZ_KEEP_SLOW").is_some() {
            save_failure(&keep);
        }
        if took > slowest {
            slowest = took;
            slowest_label = label;
        }
        // A sample of refused hhl.yaml inputs through the real binary.
        if let (Input::Yaml(bytes), false) = (&keep, ok) {
            if runs % 40 == 0 {
                nothing_written_on_refusal(bytes);
                binary_checks += 1;
            }
        }
    }
    drop(input_tx);
    worker.join().unwrap();
    eprintln!(
        "fuzz: {runs} inputs ({replayed} from tests/fuzz-corpus) in {:.1} s, {accepted} accepted, slowest {slowest:?} ({slowest_label}), limit {limit:?} (example {baselines:?}), {binary_checks} checked through the binary",
        started.elapsed().as_secs_f64()
    );
    assert!(runs > 100, "only {runs} inputs ran");
}

fn save_failure(input: &Input) {
    let dir = repo().join("target/fuzz-failures");
    fs::create_dir_all(&dir).unwrap();
    let n = fs::read_dir(&dir).unwrap().count();
    let (name, bytes) = match input {
        Input::Yaml(b) => (format!("{n}.yaml"), b),
        Input::Template(b) => (format!("{n}.hbs"), b),
        Input::Legacy(l, b) => (format!("{n}--{l}"), b),
    };
    fs::write(dir.join(name), bytes).unwrap();
}
