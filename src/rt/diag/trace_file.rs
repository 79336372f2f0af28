//! The files the scheduler trace goes to, shared by every loop of the
//! process that traces to the same path.
//!
//! A JSON file is written in the trace-event *array* format: `[`, then
//! events separated by commas, then `]` when the last loop using the file
//! closes. The format allows the closing `]` to be missing, so a file cut
//! short by a killed process still opens. A loop that opens the file again
//! later (a second `run` in the same process) continues it: the `]` is
//! taken off and events go on after the old ones. The text form is plain
//! lines, with a `# loop N` line wherever the writing loop changes.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One trace file and who writes to it.
pub(crate) struct TraceFile {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: File,
    /// The text form rather than JSON.
    text: bool,
    /// A JSON event has been written (the next one needs a comma).
    any: bool,
    /// Loops writing to it now.
    open: usize,
    /// Where the closing `]` begins, while no loop has it open.
    tail: Option<u64>,
    /// The loop that wrote the last chunk (the text form names changes).
    last_loop: u64,
}

/// Every trace file this process opened, by path.
static FILES: Mutex<Vec<Arc<TraceFile>>> = Mutex::new(Vec::new());

/// True if `path` asks for the text form (it ends in `.txt`).
pub(crate) fn is_text(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
}

impl TraceFile {
    /// Opens `path` for one more loop: created (or emptied) the first time
    /// this process uses it, continued after that.
    pub(crate) fn open(path: &Path) -> io::Result<Arc<TraceFile>> {
        let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = files.iter().find(|f| f.path == path) {
            let mut state = known.lock();
            if let Some(tail) = state.tail.take() {
                state.file.set_len(tail)?;
                state.file.seek(SeekFrom::Start(tail))?;
            }
            state.open += 1;
            drop(state);
            return Ok(known.clone());
        }
        let text = is_text(path);
        let mut file = File::create(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create the trace file {}: {e}", path.display()),
            )
        })?;
        if !text {
            file.write_all(b"[\n")?;
        }
        let opened = Arc::new(TraceFile {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                file,
                text,
                any: false,
                open: 1,
                tail: None,
                last_loop: 0,
            }),
        });
        files.push(opened.clone());
        Ok(opened)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends loop `loop_id`'s events: for JSON, each one starts with a
    /// comma (taken off the first event of the file).
    pub(crate) fn append(&self, loop_id: u64, chunk: &str) {
        if chunk.is_empty() {
            return;
        }
        let mut state = self.lock();
        let mut chunk = chunk;
        let mut header = String::new();
        if state.text && state.last_loop != loop_id {
            header = format!("# loop {loop_id}\n");
        } else if !state.text && !state.any {
            chunk = chunk.strip_prefix(',').unwrap_or(chunk);
            state.any = true;
        }
        state.last_loop = loop_id;
        let file = &mut state.file;
        let result = file
            .write_all(header.as_bytes())
            .and_then(|()| file.write_all(chunk.as_bytes()));
        if let Err(e) = result {
            eprintln!(
                "fiberloop: writing the trace to {} failed: {e}",
                self.path.display()
            );
        }
    }

    /// One loop is done with the file; the last one closes the JSON array.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.open -= 1;
        if state.open > 0 || state.text {
            return;
        }
        let result = state.file.stream_position().and_then(|at| {
            state.file.write_all(b"\n]\n")?;
            Ok(at)
        });
        match result {
            Ok(at) => state.tail = Some(at),
            Err(e) => eprintln!(
                "fiberloop: closing the trace {} failed: {e}",
                self.path.display()
            ),
        }
    }
}
