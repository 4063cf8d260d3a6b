//! When a container that exited runs again: the kubelet's restart rules and crash back-off, as
//! one pure state machine every backend uses (the simulated one in closed form, the real ones
//! one exit at a time).

use std::time::Duration;

use crate::RestartPolicy;

/// The kubelet's crash back-off: `initial`, doubled per restart up to `max`; a container whose
/// last run lasted `reset_after` or longer starts again from `initial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Backoff {
    /// The kubelet's values: 10 s, doubling to 5 min, reset after 10 min of running.
    pub const KUBELET: Backoff = Backoff {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(300),
        reset_after: Duration::from_secs(600),
    };

    /// The same shape from another first delay (the simulated runtime's `restart-backoff`);
    /// the cap never falls below the first delay.
    pub fn starting_at(initial: Duration) -> Backoff {
        Backoff {
            initial,
            max: Backoff::KUBELET.max.max(initial),
            ..Backoff::KUBELET
        }
    }

    /// The wait before restart number `n` (1-based) of a container whose runs last `run`
    /// (`None`: not known to be long).
    pub fn delay(&self, n: u64, run: Option<Duration>) -> Duration {
        if self.initial.is_zero() || run.is_some_and(|r| r >= self.reset_after) {
            return self.initial;
        }
        let shift = n.saturating_sub(1).min(63) as u32;
        1u64.checked_shl(shift)
            .and_then(|m| u32::try_from(m).ok())
            .and_then(|m| self.initial.checked_mul(m))
            .map_or(self.max, |d| d.min(self.max))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::KUBELET
    }
}

/// Whether a container that exited with `exit_code` runs again: regular containers by the
/// pod's restart policy; init containers when they failed and the policy is not `Never`.
pub fn restarts(policy: RestartPolicy, init: bool, exit_code: i32) -> bool {
    if init {
        policy.restarts_init(exit_code)
    } else {
        policy.restarts(exit_code)
    }
}

/// What follows an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Start the container again after `delay` (`CrashLoopBackOff` while it waits, when the
    /// delay is not zero).
    Restart { delay: Duration },
    /// The container stays terminated.
    Done,
}

/// One container's restart history: how many times it restarted and which back-off step it is
/// on. Real backends keep one per container and feed it every exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestartState {
    /// Kubernetes' `restartCount`: runs started after the first.
    pub restart_count: u32,
    /// Back-off steps taken since the last reset.
    #[serde(default)]
    steps: u64,
}

impl RestartState {
    /// A container exited after running for `ran` with `exit_code`. `stopped` exits (the pod is
    /// being deleted) never restart.
    pub fn on_exit(
        &mut self,
        backoff: &Backoff,
        policy: RestartPolicy,
        init: bool,
        exit_code: i32,
        ran: Duration,
        stopped: bool,
    ) -> AfterExit {
        if stopped || !restarts(policy, init, exit_code) {
            return AfterExit::Done;
        }
        if ran >= backoff.reset_after {
            self.steps = 0;
        }
        self.steps += 1;
        AfterExit::Restart {
            delay: backoff.delay(self.steps, Some(ran)),
        }
    }

    /// The restart was carried out: the next run has started.
    pub fn restarted(&mut self) {
        self.restart_count = self.restart_count.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn back_off_doubles_to_the_cap_and_resets_after_long_runs() {
        let b = Backoff::KUBELET;
        let delays: Vec<u64> = (1..=7).map(|n| b.delay(n, None).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.delay(1_000, None), S(300));
        assert_eq!(b.delay(5, Some(S(600))), S(10));
        assert_eq!(
            Backoff::starting_at(Duration::ZERO).delay(9, None),
            Duration::ZERO
        );
        assert_eq!(Backoff::starting_at(S(400)).delay(3, None), S(400));
    }

    #[test]
    fn policies_decide_restarts() {
        use RestartPolicy::*;
        assert!(restarts(Always, false, 0));
        assert!(!restarts(OnFailure, false, 0));
        assert!(restarts(OnFailure, false, 2));
        assert!(!restarts(Never, false, 2));
        assert!(!restarts(Always, true, 0));
        assert!(restarts(Always, true, 1));
        assert!(!restarts(Never, true, 1));
    }

    #[test]
    fn the_state_machine_counts_and_backs_off() {
        let b = Backoff::KUBELET;
        let mut s = RestartState::default();
        let policy = RestartPolicy::Always;
        assert_eq!(
            s.on_exit(&b, policy, false, 1, S(1), false),
            AfterExit::Restart { delay: S(10) }
        );
        s.restarted();
        assert_eq!(
            s.on_exit(&b, policy, false, 1, S(1), false),
            AfterExit::Restart { delay: S(20) }
        );
        s.restarted();
        assert_eq!(s.restart_count, 2);
        // A long run resets the back-off.
        assert_eq!(
            s.on_exit(&b, policy, false, 1, S(700), false),
            AfterExit::Restart { delay: S(10) }
        );
        assert_eq!(s.on_exit(&b, policy, false, 1, S(1), true), AfterExit::Done);
        assert_eq!(
            s.on_exit(&b, RestartPolicy::OnFailure, false, 0, S(1), false),
            AfterExit::Done
        );
    }
}
