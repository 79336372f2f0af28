//! Measuring: every model, every repetition, interleaved, and the figures
//! (median and range) made from the samples.

use crate::model::Model;
use crate::{report, Options};

/// Each model's samples (or why it has none), and notes on failed repetitions.
pub type Measured<T> = (Vec<(Model, Result<Vec<T>, String>)>, Vec<String>);

/// Runs `measure(model)` for every model, `reps` times, interleaved, and
/// collects each model's samples, or the reason it has none. A repetition
/// that fails does not cost a model its other samples: the figure is the
/// median of those that worked, and a note (returned second) says how many
/// failed and why.
pub fn interleaved<T>(
    opts: &Options,
    label: &str,
    mut measure: impl FnMut(Model) -> Result<T, String>,
    show: impl Fn(&T) -> String,
) -> Measured<T> {
    let reps = opts.plan.reps;
    let mut runs: Vec<(Model, Vec<T>, Vec<String>)> = opts
        .models
        .iter()
        .map(|&m| (m, Vec::new(), Vec::new()))
        .collect();
    for rep in 0..reps {
        for (model, samples, failures) in runs.iter_mut() {
            match measure(*model) {
                Ok(sample) => {
                    let name = model.name();
                    eprintln!(
                        "  {label} {name:<8} rep {}/{reps}: {}",
                        rep + 1,
                        show(&sample)
                    );
                    samples.push(sample);
                }
                Err(why) => {
                    // Once per reason: a model that cannot run this fails alike each time.
                    if !failures.contains(&why) {
                        let name = model.name();
                        eprintln!("  {label} {name:<8} rep {}/{reps}: {why}", rep + 1);
                    }
                    failures.push(why);
                }
            }
        }
    }
    let mut notes = Vec::new();
    let results = runs
        .into_iter()
        .map(|(model, samples, failures)| {
            let Some(first) = failures.first() else {
                return (model, Ok(samples));
            };
            let failed = failures.len();
            if samples.is_empty() {
                // Every repetition failed (or the model cannot run this at all).
                return (model, Err(first.clone()));
            }
            let note = format!(
                "{}: {failed} of {reps} repetitions failed ({first}); the figure is the median of the other {}",
                model.name(),
                samples.len()
            );
            eprintln!("  {label} {note}");
            notes.push(note);
            (model, Ok(samples))
        })
        .collect();
    (results, notes)
}

/// The median of the `f`-projection of samples, and its range.
pub fn figure<T>(samples: &[T], f: impl Fn(&T) -> f64) -> report::Fig {
    let mut v: Vec<f64> = samples.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    report::Fig {
        median: at(v.len() / 2),
        min: at(0),
        max: at(v.len().saturating_sub(1)),
    }
}
