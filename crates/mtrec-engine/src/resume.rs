//! Resumable runs: the whole state of a training (or search) written to one file at
//! intervals, so that a run killed at any moment and started again continues from the last
//! complete state and, on CPU, ends with exactly the metrics of an uninterrupted run.
//!
//! The file is written to a temporary sibling, synced, renamed over the old one and the
//! folder synced: a kill during the write leaves the previous state whole. It holds a CBOR
//! header (f64 values are stored as their bits, which JSON text does not promise) and raw
//! blobs (weights, optimizer state). Weights are recorded parameter by parameter in the
//! model's visiting order with their [`ParamId`]s: burn's optimizer state is keyed by those
//! ids, which are random per process, so a resumed model takes its old ids back
//! ([`restore_params`]) and the saved optimizer state fits it as it is.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{EngineError, ExperimentConfig};

const MAGIC: &[u8; 8] = b"MTRECST1";

/// The header and blobs of one state file.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Named CBOR values (the loop's counters and history, a trainer's small state).
    pub values: BTreeMap<String, ciborium::Value>,
    /// Named byte blobs (weights, optimizer state).
    pub blobs: BTreeMap<String, Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    /// The run's config with the state interval left out: a state is resumed only by the
    /// same experiment.
    fingerprint: String,
    values: BTreeMap<String, ciborium::Value>,
    /// Blob names and lengths in file order.
    blobs: Vec<(String, u64)>,
}

impl Snapshot {
    pub fn put(&mut self, key: &str, value: &impl Serialize) -> Result<(), EngineError> {
        let v = ciborium::Value::serialized(value)
            .map_err(|e| EngineError::Invalid(format!("encoding the run state `{key}`: {e}")))?;
        self.values.insert(key.to_string(), v);
        Ok(())
    }

    /// The value stored under `key`; an error naming the file when it is missing or of
    /// another shape.
    pub fn get<T: for<'de> Deserialize<'de>>(
        &self,
        file: &Path,
        key: &str,
    ) -> Result<T, EngineError> {
        let v = self
            .values
            .get(key)
            .ok_or_else(|| state_err(file, format!("no `{key}` in it")))?;
        v.deserialized()
            .map_err(|e| state_err(file, format!("`{key}` is damaged: {e}")))
    }

    pub fn blob(&self, file: &Path, key: &str) -> Result<&[u8], EngineError> {
        self.blobs
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| state_err(file, format!("no `{key}` blob in it")))
    }
}

fn state_err(path: &Path, message: impl std::fmt::Display) -> EngineError {
    EngineError::State {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Where a run keeps its state, how often it writes it, and for which experiment.
#[derive(Debug, Clone)]
pub struct StateFile {
    pub path: PathBuf,
    /// Also write the state every this many optimizer steps inside an epoch (0: at the end
    /// of each epoch only).
    pub every_steps: usize,
    fingerprint: String,
    /// Values and blobs written with every state (a finished search's result, carried through
    /// its finetune's states).
    carry: std::sync::Arc<Snapshot>,
}

impl StateFile {
    /// The state of a run writing its checkpoint to `out`: `<out>.state` beside it. The
    /// experiment is identified by its whole config except `train.epochs`, so a killed run can
    /// be resumed with more epochs (it then ends as a run of that many would have).
    pub fn beside(out: &Path, every_steps: usize, cfg: &ExperimentConfig) -> Self {
        let mut identity = cfg.clone();
        identity.train.epochs = 0;
        let mut name = out
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "run".into());
        name.push(".state");
        Self {
            path: out.with_file_name(name),
            every_steps,
            fingerprint: identity.to_toml_string(),
            carry: Default::default(),
        }
    }

    /// The same file, every later state carrying `carry` along.
    pub fn with_carry(&self, carry: Snapshot) -> Self {
        Self {
            carry: std::sync::Arc::new(carry),
            ..self.clone()
        }
    }

    /// The saved state, if any; an error when it belongs to another experiment or is damaged
    /// (the run must not silently start over and overwrite it).
    pub fn load(&self) -> Result<Option<Snapshot>, EngineError> {
        self.remove_stale_temporaries();
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EngineError::io(&self.path, e)),
        };
        let (fingerprint, snapshot) = decode(&self.path, &bytes)?;
        if fingerprint != self.fingerprint {
            return Err(state_err(
                &self.path,
                format!(
                    "it was written by a run of another config ({}); resuming would mix two \
                     experiments: give this run another --out, or pass --restart to discard it",
                    first_difference(&fingerprint, &self.fingerprint)
                ),
            ));
        }
        Ok(Some(snapshot))
    }

    /// Temporary files of writes that a kill interrupted (never read: the rename did not
    /// happen). Only the run that owns the state reads it, so any such file is stale.
    fn remove_stale_temporaries(&self) {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Writes `snapshot` atomically over the previous state.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), EngineError> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = fs::File::create(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
            let merged;
            let snapshot = if self.carry.values.is_empty() && self.carry.blobs.is_empty() {
                snapshot
            } else {
                let mut values = self.carry.values.clone();
                values.extend(snapshot.values.clone());
                let mut blobs = self.carry.blobs.clone();
                blobs.extend(snapshot.blobs.iter().map(|(k, v)| (k.clone(), v.clone())));
                merged = Snapshot { values, blobs };
                &merged
            };
            if std::env::var_os("MTREC_KILL_AT").is_some() {
                // Half the file on disk, then the kill (see `kill_point`).
                let mut bytes = Vec::new();
                encode(&mut bytes, &self.fingerprint, snapshot)
                    .map_err(|e| EngineError::io(&tmp, e))?;
                file.write_all(&bytes[..bytes.len() / 2])
                    .map_err(|e| EngineError::io(&tmp, e))?;
                file.sync_all().map_err(|e| EngineError::io(&tmp, e))?;
                kill_point("state-write");
                file.write_all(&bytes[bytes.len() / 2..])
                    .map_err(|e| EngineError::io(&tmp, e))?;
            } else {
                encode(&mut file, &self.fingerprint, snapshot)
                    .map_err(|e| EngineError::io(&tmp, e))?;
            }
            file.sync_all().map_err(|e| EngineError::io(&tmp, e))?;
            fs::rename(&tmp, &self.path).map_err(|e| EngineError::io(&self.path, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        // The rename is durable once the folder is: without this a power cut could bring back
        // the old state after the run went on (harmless) or neither (not harmless).
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Removes the state once the run's results are safely written.
    pub fn remove(&self) -> Result<(), EngineError> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(EngineError::io(&self.path, e))
            }
            _ => Ok(()),
        }
    }
}

/// The first line where two config texts differ, with its `[section]`, for the refusal
/// message.
fn first_difference(saved: &str, now: &str) -> String {
    let mut section = String::new();
    for (a, b) in saved.lines().zip(now.lines()) {
        if a != b {
            let at = if section.is_empty() {
                String::new()
            } else {
                format!("in {section}: ")
            };
            return format!("{at}saved `{a}`, now `{b}`");
        }
        if a.starts_with('[') {
            section = a.to_string();
        }
    }
    "one config is longer than the other".into()
}

fn encode(w: &mut impl Write, fingerprint: &str, s: &Snapshot) -> std::io::Result<()> {
    let header = Header {
        fingerprint: fingerprint.to_string(),
        values: s.values.clone(),
        blobs: s
            .blobs
            .iter()
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect(),
    };
    let mut head = Vec::new();
    ciborium::into_writer(&header, &mut head).map_err(std::io::Error::other)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, w);
    w.write_all(MAGIC)?;
    w.write_all(&(head.len() as u64).to_le_bytes())?;
    w.write_all(&head)?;
    for blob in s.blobs.values() {
        w.write_all(blob)?;
    }
    w.flush()
}

/// Reads a state file, refusing in one line one that is cut short, padded or not a state.
/// Declared lengths are checked against the bytes present before anything is allocated.
fn decode(path: &Path, bytes: &[u8]) -> Result<(String, Snapshot), EngineError> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(state_err(
            path,
            "not an mtrec run state (bad magic); delete it or pass --restart",
        ));
    }
    let head_len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let rest = &bytes[16..];
    if head_len > rest.len() as u64 {
        return Err(state_err(path, "truncated (the header is cut short)"));
    }
    let (head, mut body) = rest.split_at(head_len as usize);
    let header: Header = ciborium::from_reader(head)
        .map_err(|e| state_err(path, format!("the header is damaged: {e}")))?;
    let declared: u64 = header
        .blobs
        .iter()
        .map(|(_, n)| *n)
        .fold(0u64, u64::saturating_add);
    if declared != body.len() as u64 {
        return Err(state_err(
            path,
            format!(
                "{} ({} bytes of data declared, {} present)",
                if declared > body.len() as u64 {
                    "truncated"
                } else {
                    "damaged"
                },
                declared,
                body.len()
            ),
        ));
    }
    let mut blobs = BTreeMap::new();
    for (name, n) in &header.blobs {
        let (blob, tail) = body.split_at(*n as usize);
        blobs.insert(name.clone(), blob.to_vec());
        body = tail;
    }
    let snapshot = Snapshot {
        values: header.values,
        blobs,
    };
    Ok((header.fingerprint, snapshot))
}

/// Every float parameter of a module (and running statistic, such as batch norm's) in
/// visiting order: id, shape and values, as little-endian bytes.
pub fn record_params<M: Module>(module: &M) -> Vec<u8> {
    struct Recorder(Vec<u8>, u64);
    impl ModuleVisitor for Recorder {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let dims = value.dims();
            self.0.extend_from_slice(&param.id.val().to_le_bytes());
            self.0.extend_from_slice(&(D as u32).to_le_bytes());
            for d in dims {
                self.0.extend_from_slice(&(d as u64).to_le_bytes());
            }
            let values = value
                .into_data()
                .try_to_vec_as::<f32>()
                .expect("float parameters convert to f32");
            for v in values {
                self.0.extend_from_slice(&v.to_le_bytes());
            }
            self.1 += 1;
        }
    }
    let mut r = Recorder(Vec::new(), 0);
    module.visit(&mut r);
    let mut out = r.1.to_le_bytes().to_vec();
    out.extend_from_slice(&r.0);
    out
}

/// One recorded parameter.
struct Recorded {
    id: u64,
    dims: Vec<usize>,
    values: Vec<f32>,
}

fn parse_params(bytes: &[u8]) -> Result<Vec<Recorded>, String> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let end = at
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or("cut short")?;
        let s = &bytes[at..end];
        at = end;
        Ok(s)
    };
    let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
    let count = u64_of(take(8)?);
    let mut out = Vec::new();
    for _ in 0..count {
        let id = u64_of(take(8)?);
        let rank = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        if rank > 8 {
            return Err(format!("a parameter of rank {rank}"));
        }
        let mut dims = Vec::with_capacity(rank);
        let mut n = 1usize;
        for _ in 0..rank {
            let d = usize::try_from(u64_of(take(8)?)).map_err(|_| "a dimension too large")?;
            n = n.checked_mul(d).ok_or("a shape too large")?;
            dims.push(d);
        }
        let raw = take(n.checked_mul(4).ok_or("a shape too large")?)?;
        let values = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        out.push(Recorded { id, dims, values });
    }
    if at != bytes.len() {
        return Err("trailing bytes after the last parameter".into());
    }
    Ok(out)
}

/// Puts recorded values (and, with `ids`, the recorded [`ParamId`]s) back into a module of
/// the same architecture, built afresh; refuses a record of another shape.
pub fn restore_params<M: Module>(module: M, bytes: &[u8], ids: bool) -> Result<M, String> {
    struct Restorer {
        params: std::vec::IntoIter<Recorded>,
        ids: bool,
        index: usize,
        error: Option<String>,
    }
    impl ModuleMapper for Restorer {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            self.index += 1;
            if self.error.is_some() {
                return param;
            }
            let Some(rec) = self.params.next() else {
                self.error = Some("it holds fewer parameters than the model".into());
                return param;
            };
            let (id, value, mapper) = param.consume();
            if rec.dims != value.dims() {
                self.error = Some(format!(
                    "parameter {} has shape {:?} there and {:?} in the model",
                    self.index,
                    rec.dims,
                    value.dims()
                ));
                return Param::from_mapped_value(id, value, mapper);
            }
            let device = value.device();
            let grad = value.is_require_grad();
            let mut t = Tensor::<D>::from_data(TensorData::new(rec.values, rec.dims), &device);
            if grad {
                t = t.require_grad();
            }
            let id = if self.ids { ParamId::from(rec.id) } else { id };
            Param::from_mapped_value(id, t, mapper)
        }
    }
    let params = parse_params(bytes)?;
    let n = params.len();
    let mut r = Restorer {
        params: params.into_iter(),
        ids,
        index: 0,
        error: None,
    };
    let module = module.map(&mut r);
    if let Some(e) = r.error {
        return Err(e);
    }
    if r.index != n {
        return Err(format!("it holds {n} parameters, the model {}", r.index));
    }
    Ok(module)
}

/// Fault injection for the resume tests: with `MTREC_KILL_AT=<point>:<n>` in the environment
/// the process kills itself with SIGKILL the `n`-th time (1-based) it reaches `point`
/// (`step`: after an optimizer step; `state-write`: halfway through writing a state file;
/// `search-epoch`: after a search epoch's state is written). A real kill at a chosen moment,
/// which a timer from outside cannot aim at.
pub fn kill_point(point: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("MTREC_KILL_AT").ok()?;
        let (p, n) = v.rsplit_once(':')?;
        Some((p.to_string(), n.parse().ok()?))
    });
    if let Some((p, n)) = target
        && p == point
        && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *n
    {
        #[cfg(unix)]
        // SAFETY: raising a signal on this process; SIGKILL cannot be caught.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// Reseeds the device's random stream for optimizer step `step` of a run seeded `seed`:
/// dropout and sampled gates then draw the same numbers at every step whether or not the run
/// was interrupted before it (the device's generator state cannot be read back to be saved).
///
/// Step 0 keeps the stream `train.seed` started: burn initialises parameters lazily, on the
/// first forward pass, so reseeding before it would change every model's initial weights
/// (and every figure measured before resumable runs existed). A state is never saved before
/// step 0, so no resume starts there.
pub fn seed_step(device: &Device, seed: u64, step: u64) {
    if step == 0 {
        return;
    }
    // SplitMix64 of the pair, so neighbouring steps get unrelated streams.
    let mut z = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    device.seed(z ^ (z >> 31));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let mut s = Snapshot::default();
        s.put("loss", &0.1f64).unwrap();
        s.put("history", &vec![1.0f64 / 3.0, f64::MIN_POSITIVE])
            .unwrap();
        s.blobs.insert("a".into(), vec![1, 2, 3]);
        s.blobs.insert("b".into(), vec![9; 1000]);
        s
    }

    fn state(dir: &Path, fingerprint: &str) -> StateFile {
        StateFile {
            path: dir.join("run.state"),
            every_steps: 0,
            fingerprint: fingerprint.into(),
            carry: Default::default(),
        }
    }

    #[test]
    fn a_state_round_trips_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let f = state(dir.path(), "cfg");
        assert!(f.load().unwrap().is_none());
        f.save(&snapshot()).unwrap();
        let back = f.load().unwrap().unwrap();
        let h: Vec<f64> = back.get(&f.path, "history").unwrap();
        assert_eq!(h[0].to_bits(), (1.0f64 / 3.0).to_bits());
        assert_eq!(h[1].to_bits(), f64::MIN_POSITIVE.to_bits());
        assert_eq!(back.blob(&f.path, "b").unwrap(), &[9; 1000][..]);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("run.state")]);
        f.remove().unwrap();
        assert!(f.load().unwrap().is_none());
    }

    #[test]
    fn another_config_is_refused_naming_the_difference() {
        let dir = tempfile::tempdir().unwrap();
        state(dir.path(), "a = 1\nb = 2").save(&snapshot()).unwrap();
        let e = state(dir.path(), "a = 1\nb = 3")
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run.state") && e.contains("saved `b = 2`, now `b = 3`"),
            "{e}"
        );
    }

    /// Every cut of the file, and flipped bytes in its length fields, are refused in one
    /// line; none allocates what a forged length declares.
    #[test]
    fn truncated_or_forged_states_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = state(dir.path(), "cfg");
        f.save(&snapshot()).unwrap();
        let whole = fs::read(&f.path).unwrap();
        for cut in [0, 7, 15, 16, 40, whole.len() - 1000, whole.len() - 1] {
            fs::write(&f.path, &whole[..cut]).unwrap();
            let e = f.load().unwrap_err().to_string();
            assert!(
                e.contains("run state") && !e.contains('\n'),
                "cut {cut}: {e}"
            );
        }
        let mut forged = whole.clone();
        forged[8..16].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        fs::write(&f.path, &forged).unwrap();
        assert!(f.load().unwrap_err().to_string().contains("truncated"));
        let mut padded = whole;
        padded.push(0);
        fs::write(&f.path, &padded).unwrap();
        assert!(f.load().unwrap_err().to_string().contains("damaged"));
    }

    #[test]
    fn forged_parameter_records_are_refused_without_allocating() {
        let mut b = 1u64.to_le_bytes().to_vec();
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(parse_params(&b).is_err());
        assert!(parse_params(&u64::MAX.to_le_bytes()).is_err());
    }

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<2>>,
        b: Param<Tensor<1>>,
    }

    #[test]
    fn parameters_and_ids_come_back() {
        let device = Device::default();
        let make = |x: f32| Two {
            a: Param::from_tensor(Tensor::<2>::full([2, 3], x, &device)),
            b: Param::from_tensor(Tensor::<1>::from_floats([x, -x, 0.5], &device)),
        };
        let saved = make(1.25);
        let bytes = record_params(&saved);
        let fresh = restore_params(make(0.0), &bytes, true).unwrap();
        assert_eq!(fresh.a.id, saved.a.id);
        assert_eq!(fresh.b.id, saved.b.id);
        let vals: Vec<f32> = fresh.b.val().into_data().try_to_vec_as().unwrap();
        assert_eq!(vals, vec![1.25, -1.25, 0.5]);
        let kept = restore_params(make(0.0), &bytes, false).unwrap();
        assert_ne!(kept.a.id, saved.a.id);
        let other = Two {
            a: Param::from_tensor(Tensor::<2>::zeros([3, 2], &device)),
            b: Param::from_tensor(Tensor::<1>::zeros([3], &device)),
        };
        let e = restore_params(other, &bytes, true).unwrap_err();
        assert!(e.contains("[2, 3]") && e.contains("[3, 2]"), "{e}");
        assert!(restore_params(make(0.0), &bytes[..bytes.len() - 1], true).is_err());
    }
}
