//! The commands on a stopped roster's data directory: `roster rebuild` (projections, and the
//! aggregate, from the log) and `roster check` (the log against its watermark, the aggregate's
//! and views' reach; accepting a loss, rebuilding the tenant index).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use roster_gateway::app;

use super::Common;

// The options of `roster rebuild` (its help text is the doc comment of `Command::Rebuild`).
#[derive(Args, Debug)]
pub struct RebuildArgs {
    /// Rebuild the engine's aggregate from the log too.
    #[arg(long)]
    aggregate: bool,
}

// The options of `roster check` (its help text is the doc comment of `Command::Check`).
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Accept the log as it is on disk, events lost included, so that roster starts on it
    /// again (its aggregate and views are then rebuilt). Only once a backup is ruled out.
    #[arg(long)]
    accept_loss: bool,
    /// Rebuild the log's tenant index from the events (it is derived data: no event is
    /// touched), when the check reports it wrong.
    #[arg(long)]
    reindex: bool,
}

/// `roster rebuild`'s progress on stderr: indicatif's bar with the client tools (`tools`).
#[cfg(feature = "tools")]
struct RebuildProgress(indicatif::ProgressBar);

#[cfg(feature = "tools")]
impl RebuildProgress {
    fn start() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} rebuilding [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        RebuildProgress(bar)
    }

    /// What the rebuild calls with `(done, total)` events.
    fn reporter(&self) -> impl FnMut(u64, u64) + Send + 'static {
        let bar = self.0.clone();
        move |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn finish(self) {
        self.0.finish_and_clear();
    }
}

/// `roster rebuild`'s progress on stderr without the client tools: a plain line each time the
/// rebuild passes another tenth of the log.
#[cfg(not(feature = "tools"))]
struct RebuildProgress;

#[cfg(not(feature = "tools"))]
impl RebuildProgress {
    fn start() -> Self {
        RebuildProgress
    }

    /// What the rebuild calls with `(done, total)` events.
    fn reporter(&self) -> impl FnMut(u64, u64) + Send + 'static {
        let mut tenths_shown = 0;
        move |done: u64, total: u64| {
            let tenths = done.saturating_mul(10) / total.max(1);
            if tenths > tenths_shown {
                tenths_shown = tenths;
                eprintln!("rebuilding: {done}/{total} events");
            }
        }
    }

    fn finish(self) {}
}

/// Rebuilds the projections (and with `--aggregate` the aggregate) from the log, showing its
/// progress on stderr.
pub async fn rebuild(common: &Common, arguments: RebuildArgs) -> Result<ExitCode> {
    let RebuildArgs { aggregate } = arguments;
    let data_dir = common.data_dir.clone();
    let progress = RebuildProgress::start();
    let show = progress.reporter();
    let report = tokio::task::spawn_blocking(move || app::rebuild(&data_dir, aggregate, show))
        .await?
        .context("rebuilding (is `roster serve` running on this data directory? stop it first)")?;
    progress.finish();
    if aggregate {
        println!(
            "aggregate rebuilt from {} events in {:.2}s",
            report.aggregate_events,
            report.aggregate_elapsed.as_secs_f64()
        );
    }
    println!(
        "projections rebuilt from {} events in {:.2}s: {:.0} events/s",
        report.events,
        report.elapsed.as_secs_f64(),
        report.events_per_second()
    );
    Ok(ExitCode::SUCCESS)
}

/// Checks the data directory; exits 0 when the log is whole and its tenant index matches it,
/// 1 otherwise.
pub async fn check(common: &Common, arguments: CheckArgs) -> Result<ExitCode> {
    use roster_engine::log::Verdict;
    let CheckArgs {
        accept_loss,
        reindex,
    } = arguments;
    let data_dir = common.data_dir.clone();
    let (report, before) =
        tokio::task::spawn_blocking(move || app::check(&data_dir, accept_loss, reindex))
            .await?
            .context(
                "checking (is `roster serve` running on this data directory? stop it first)",
            )?;
    let log = &report.log;
    println!("log: {} events, last sequence {}", log.events, log.head);
    let mut problems = Vec::new();
    if let Some(gap) = log.first_gap {
        problems.push(format!("sequence {gap} is missing from the log"));
    }
    if let Some(reason) = &log.damaged {
        problems.push(format!(
            "the log cannot be read past sequence {}: {reason}",
            log.head
        ));
    }
    if let Some((sequence, reason)) = &log.undecodable {
        problems.push(format!(
            "the event at sequence {sequence} does not decode: {reason}"
        ));
    }
    match &log.verdict {
        Verdict::Unmarked => println!("watermark: none yet (it is written by the next start)"),
        Verdict::Intact { marked } => {
            println!("watermark: sequence {marked}, matching the event on disk")
        }
        Verdict::Truncated { marked, recovered } => problems.push(format!(
            "the log ends at sequence {recovered}, but events up to sequence {marked} were \
             acknowledged as durable: {} acknowledged events are lost",
            marked - recovered
        )),
        Verdict::Diverged { sequence } => problems.push(format!(
            "the log holds another event at sequence {sequence} than the one acknowledged there"
        )),
    }
    match &report.aggregate {
        Ok(checkpoint) => println!("aggregate: at sequence {checkpoint}"),
        Err(reason) => problems.push(format!("the aggregate cannot be read: {reason}")),
    }
    for (name, checkpoint) in &report.projections {
        match checkpoint {
            Ok(checkpoint) => println!("view {name}: at sequence {checkpoint}"),
            Err(reason) => problems.push(format!("view {name} cannot be read: {reason}")),
        }
    }
    if let Some(mark) = before {
        println!(
            "accepted the log as it is: the watermark moved from sequence {} to {}; the aggregate \
             and views are rebuilt from the log at the next start",
            mark.sequence, log.head
        );
    }
    if let Some(batches) = report.reindexed {
        println!("tenant index: rebuilt from the events ({batches} batches)");
    }
    if problems.is_empty() && report.is_sound() {
        println!("ok: the log is whole");
        if let Some(problem) = &log.tenant_index {
            eprintln!("INDEX: {problem}");
            eprintln!(
                "no event is lost: the tenant index is derived from the log; `roster check \
                 --reindex` rebuilds it"
            );
            return Ok(ExitCode::FAILURE);
        }
        println!("tenant index: matches the log");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        eprintln!("DAMAGED: {problem}");
    }
    eprintln!(
        "restore the data directory from a backup; or, if there is none, `roster check \
         --accept-loss` accepts the log as it is (the events past it are gone for good)"
    );
    Ok(ExitCode::FAILURE)
}
