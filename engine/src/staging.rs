//! Staging, end to end: the engine drives each staging operation as a short sequence of ordinary
//! commands on the live tenant and on its staging branch (`<tenant>~s<generation>`), each decided
//! by the pure domain (`domain::staging`) and appended like any other, so everything is in the log
//! and every cache rebuilds from it.
//!
//! - **stage**: `StageTenant` on the live tenant (its directory freezes; SCIM now goes to the
//!   branch), `OpenBranch`, the live directory copied in by `CopyToBranch` commands of at most
//!   [`COPY_EVENTS_PER_COMMAND`] events, then `SetBranchState(Open)`. Interrupted (a crash, NATS
//!   gone), it is resumed by staging again: the copy skips what the branch already holds.
//! - **promote**: checks the promotion on the current states, freezes the branch (late SCIM writes
//!   are refused, never acknowledged and lost), decides `PromoteStaging` on the live tenant, whose
//!   events (the whole change and `StagingPromoted`) are one atomic append, then drops the branch.
//! - **discard**: `DiscardStaging` on the live tenant, then drops the branch.
//!
//! A branch left behind by a failure after promotion or discard is dropped by the next `stage`.
//! The freeze is a promotion's lock: a second promotion finds the branch frozen and is refused
//! (`PromotionUnderWay`); a promotion interrupted after its freeze (a crash) leaves the branch
//! frozen, and `stage` gives it back to the IdP.

use crate::domain::{
    BranchCopy, BranchDirectory, BranchState, Command, EventPayload, Footprint, PromotionDiff,
    Rejection, State, TenantName, TenantRecord, promotion_diff,
};
use crate::engine::{CommandContext, Engine, ExecuteError};
use crate::log::jetstream::MAX_BATCH;

/// Events one copy command appends at most: well inside one JetStream atomic batch.
pub const COPY_EVENTS_PER_COMMAND: usize = 500;

/// What `stage` did.
#[derive(Clone, Debug)]
pub struct Staged {
    pub generation: u64,
    /// An interrupted staging was finished rather than a new one started.
    pub resumed: bool,
    pub users_copied: usize,
    pub groups_copied: usize,
}

/// What promotion would change (or changed), with the states to name groups and resource groups.
#[derive(Clone, Debug)]
pub struct StagingReport {
    pub generation: u64,
    /// The live tenant before promotion.
    pub live: State,
    pub diff: PromotionDiff,
}

fn rejected(rejection: Rejection) -> ExecuteError {
    ExecuteError::Rejected(rejection)
}

impl Engine {
    /// The live tenant's record, or `TenantNotFound` (branches and `_system` are not tenants).
    fn live_record(&self, tenant: &TenantName) -> Result<TenantRecord, ExecuteError> {
        if tenant.is_system() || tenant.is_branch() {
            return Err(rejected(Rejection::TenantNotFound));
        }
        self.aggregate()
            .tenant(tenant)?
            .ok_or(rejected(Rejection::TenantNotFound))
    }

    fn branch_state(&self, branch: &TenantName) -> Result<Option<BranchState>, ExecuteError> {
        Ok(self
            .aggregate()
            .tenant(branch)?
            .map(|record| record.branch.unwrap_or(BranchState::Copying)))
    }

    /// Everything the aggregate holds for `tenant`, read off the async runtime.
    async fn load_whole(&self, tenant: &TenantName) -> Result<State, ExecuteError> {
        let store = self.aggregate().clone();
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = store.slice(&tenant)?;
            store.load_into(
                &mut state,
                &Footprint {
                    whole_tenant: true,
                    ..Footprint::default()
                },
            )?;
            Ok::<_, ExecuteError>(state)
        })
        .await
        .map_err(|_| ExecuteError::Unavailable("loading the directory stopped".into()))?
    }

    /// Puts `tenant` in staging, or finishes a staging whose copy was interrupted.
    pub async fn stage_tenant(
        &self,
        tenant: &TenantName,
        context: CommandContext,
    ) -> Result<Staged, ExecuteError> {
        self.aggregate_caught_up().await?;
        let record = self.live_record(tenant)?;
        let (generation, resumed) = match &record.staging {
            Some(staging) => {
                let branch = tenant.staging_branch(staging.generation);
                match self.branch_state(&branch)? {
                    Some(BranchState::Open) => {
                        return Err(rejected(Rejection::AlreadyStaged));
                    }
                    // A promotion running here holds the branch frozen: leave it be.
                    Some(BranchState::Frozen) if self.is_promoting(tenant) => {
                        return Err(rejected(Rejection::PromotionUnderWay));
                    }
                    // A promotion was interrupted after its freeze (a promotion that fails gives
                    // the branch back itself): give the branch back to the IdP.
                    Some(BranchState::Frozen) => {
                        self.execute(&branch, Command::SetBranchState(BranchState::Open), context)
                            .await?;
                        return Ok(Staged {
                            generation: staging.generation,
                            resumed: true,
                            users_copied: 0,
                            groups_copied: 0,
                        });
                    }
                    Some(BranchState::Copying) | None => (staging.generation, true),
                }
            }
            None => {
                if record.stagings > 0 {
                    // The previous branch, should a failure have left it behind.
                    self.execute(
                        &tenant.staging_branch(record.stagings),
                        Command::DropBranch,
                        context.clone(),
                    )
                    .await?;
                }
                let executed = self
                    .execute(tenant, Command::StageTenant, context.clone())
                    .await?;
                let generation = executed
                    .events
                    .iter()
                    .find_map(|event| match event.payload {
                        EventPayload::TenantStaged { generation } => Some(generation),
                        _ => None,
                    })
                    .ok_or_else(|| ExecuteError::Unavailable("staging was not recorded".into()))?;
                (generation, false)
            }
        };
        let branch = tenant.staging_branch(generation);
        if self.branch_state(&branch)?.is_none() {
            match self
                .execute(&branch, Command::OpenBranch, context.clone())
                .await
            {
                Ok(_) => {}
                // Opened by a concurrent `stage` in the meantime.
                Err(ExecuteError::Rejected(_)) if self.branch_state(&branch)?.is_some() => {}
                Err(error) => return Err(error),
            }
        }
        // The live directory is frozen from `StageTenant` on: this copy is all of it.
        let live = self.load_whole(tenant).await?;
        let mut copy = BranchCopy {
            usernames: live.tenant.as_ref().map(|tenant| tenant.usernames),
            ..BranchCopy::default()
        };
        let mut pending_events = 0;
        let (mut users_copied, mut groups_copied) = (0, 0);
        for user in live.all_users() {
            copy.users.push((user.id, user.profile.clone()));
            if let Some(handle) = &user.handle {
                copy.handles.insert(user.id, handle.clone());
            }
            users_copied += 1;
            pending_events += 1;
            if pending_events >= COPY_EVENTS_PER_COMMAND {
                self.copy(&branch, std::mem::take(&mut copy), &context)
                    .await?;
                pending_events = 0;
            }
        }
        for group in live.all_groups() {
            let members: Vec<_> = live.members_of(group.id).collect();
            let cost = 1 + members.len().div_ceil(crate::domain::MEMBERS_PER_EVENT);
            if pending_events > 0 && pending_events + cost > COPY_EVENTS_PER_COMMAND {
                self.copy(&branch, std::mem::take(&mut copy), &context)
                    .await?;
                pending_events = 0;
            }
            copy.groups.push((group.id, group.profile.clone(), members));
            groups_copied += 1;
            pending_events += cost;
        }
        if !copy.users.is_empty() || !copy.groups.is_empty() || copy.usernames.is_some() {
            self.copy(&branch, copy, &context).await?;
        }
        self.execute(&branch, Command::SetBranchState(BranchState::Open), context)
            .await?;
        Ok(Staged {
            generation,
            resumed,
            users_copied,
            groups_copied,
        })
    }

    async fn copy(
        &self,
        branch: &TenantName,
        copy: BranchCopy,
        context: &CommandContext,
    ) -> Result<(), ExecuteError> {
        self.execute(branch, Command::CopyToBranch(copy), context.clone())
            .await
            .map(|_| ())
    }

    /// The staged tenant's generation and branch, once the branch is past its copy.
    fn open_staging(&self, tenant: &TenantName) -> Result<(u64, TenantName), ExecuteError> {
        let generation = self
            .live_record(tenant)?
            .staging
            .map(|staging| staging.generation)
            .ok_or(rejected(Rejection::NotStaged))?;
        let branch = tenant.staging_branch(generation);
        match self.branch_state(&branch)? {
            Some(BranchState::Open | BranchState::Frozen) => Ok((generation, branch)),
            _ => Err(rejected(Rejection::BranchNotOpen(
                "still copying the live directory",
                "run `roster tenant stage` again to finish it",
            ))),
        }
    }

    /// What promotion would do now; with `to_promote`, refused when it could not be appended.
    async fn report(
        &self,
        tenant: &TenantName,
        generation: u64,
        branch: &TenantName,
        to_promote: bool,
    ) -> Result<(StagingReport, BranchDirectory), ExecuteError> {
        let live = self.load_whole(tenant).await?;
        let directory = BranchDirectory::of(&self.load_whole(branch).await?);
        let diff = promotion_diff(&live, generation, &directory)?;
        if to_promote && self.is_jetstream() && diff.events > MAX_BATCH {
            return Err(rejected(Rejection::PromotionTooLarge {
                events: diff.events,
                max: MAX_BATCH,
            }));
        }
        Ok((
            StagingReport {
                generation,
                live,
                diff,
            },
            directory,
        ))
    }

    /// What promoting `tenant`'s staging would change, per user. Role mappings, resource-group
    /// links and the default role are the live tenant's, as they are now.
    pub async fn staging_diff(&self, tenant: &TenantName) -> Result<StagingReport, ExecuteError> {
        self.aggregate_caught_up().await?;
        let (generation, branch) = self.open_staging(tenant)?;
        let (report, _) = self.report(tenant, generation, &branch, false).await?;
        Ok(report)
    }

    /// Makes `tenant`'s directory its staging branch's in one atomic append and leaves staging.
    /// Returns what it changed.
    pub async fn promote_staging(
        &self,
        tenant: &TenantName,
        context: CommandContext,
    ) -> Result<StagingReport, ExecuteError> {
        self.aggregate_caught_up().await?;
        let Some(_promoting) = self.promotion_guard(tenant) else {
            return Err(rejected(Rejection::PromotionUnderWay));
        };
        let (generation, branch) = self.open_staging(tenant)?;
        // Refuse a promotion that cannot succeed before freezing anything.
        self.report(tenant, generation, &branch, true).await?;
        // The freeze is this promotion's lock: a branch frozen already belongs to another
        // promotion (or to one that was interrupted), which may give it back to the IdP at any
        // moment; promoting from it could drop the writes that land after that.
        let froze = self
            .execute(
                &branch,
                Command::SetBranchState(BranchState::Frozen),
                context.clone(),
            )
            .await?;
        if froze.events.is_empty() {
            return Err(rejected(Rejection::PromotionUnderWay));
        }
        let promoted = async {
            let (report, directory) = self.report(tenant, generation, &branch, true).await?;
            // Still frozen by this promotion: had anything given the branch back meanwhile
            // (`stage` in another process), writes acknowledged since would be lost.
            if self.branch_state(&branch)? != Some(BranchState::Frozen) {
                return Err(rejected(Rejection::BranchNotOpen(
                    "no longer frozen for this promotion",
                    "promote again",
                )));
            }
            self.execute(
                tenant,
                Command::PromoteStaging {
                    generation,
                    branch: Box::new(directory),
                },
                context.clone(),
            )
            .await?;
            Ok::<_, ExecuteError>(report)
        }
        .await;
        let report = match promoted {
            Ok(report) => report,
            Err(error) => {
                // Give the branch back to the IdP; the tenant stays staged.
                if let Err(reopen) = self
                    .execute(&branch, Command::SetBranchState(BranchState::Open), context)
                    .await
                {
                    tracing::warn!(%tenant, error = %reopen, "reopening the staging branch failed");
                }
                return Err(error);
            }
        };
        self.drop_branch(tenant, &branch, context).await;
        Ok(report)
    }

    /// Leaves staging without changing the live directory; the branch is dropped.
    pub async fn discard_staging(
        &self,
        tenant: &TenantName,
        context: CommandContext,
    ) -> Result<u64, ExecuteError> {
        self.aggregate_caught_up().await?;
        let executed = self
            .execute(tenant, Command::DiscardStaging, context.clone())
            .await?;
        let generation = executed
            .events
            .iter()
            .find_map(|event| match event.payload {
                EventPayload::StagingDiscarded { generation } => Some(generation),
                _ => None,
            })
            .ok_or_else(|| ExecuteError::Unavailable("the discard was not recorded".into()))?;
        self.drop_branch(tenant, &tenant.staging_branch(generation), context)
            .await;
        Ok(generation)
    }

    /// Drops a branch the tenant no longer uses; on failure the next `stage` drops it.
    async fn drop_branch(&self, tenant: &TenantName, branch: &TenantName, context: CommandContext) {
        if let Err(error) = self.execute(branch, Command::DropBranch, context).await {
            tracing::warn!(%tenant, %branch, %error, "dropping the staging branch failed; the next stage drops it");
        }
    }
}
