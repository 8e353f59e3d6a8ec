//! Prices what consent flows used on the AWS path, and the same flows on Step Functions
//! Standard, at published on-demand prices. `shared/examples/cost.rs` measures the usage
//! (`scripts/bench-cost`); docs/PERFORMANCE.md says what each side is charged for.

/// On-demand prices in dollars (us-east-1, Lambda on arm64), as AWS's pricing pages listed
/// them when this was written.
#[derive(Clone, Copy, Debug)]
pub struct Prices {
    pub write_unit: f64,
    pub read_unit: f64,
    pub lambda_request: f64,
    pub lambda_gb_second: f64,
    pub http_api_request: f64,
    pub scheduler_invocation: f64,
    pub state_transition: f64,
}

pub const US_EAST_1: Prices = Prices {
    write_unit: 0.625e-6,
    read_unit: 0.125e-6,
    lambda_request: 0.20e-6,
    lambda_gb_second: 0.000_013_333_4,
    http_api_request: 1.00e-6,
    scheduler_invocation: 1.00e-6,
    state_transition: 25.0e-6,
};

/// What one accepted flow used, on average over the flows measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowUsage {
    pub write_units: f64,
    pub read_units: f64,
    /// Webhook requests: the contact's messages and the channel's status reports.
    pub webhooks: f64,
    pub webhook_gb_seconds: f64,
    pub step_invocations: f64,
    pub step_gb_seconds: f64,
    pub scheduler_invocations: f64,
    /// Messages sent: on Step Functions, a Lambda task each.
    pub sends: f64,
    /// One send's time, as such a task would be billed for it.
    pub send_seconds: f64,
}

/// State transitions of the accepted flow on Step Functions Standard: start, send the link,
/// ask (with a task token), choice, acknowledge, tag, succeed.
pub const TRANSITIONS: f64 = 7.0;
/// Write units both designs pay for: two consent ledger records, and the segment entry
/// with its index write.
pub const SHARED_WRITE_UNITS: f64 = 4.0;
/// Lambda memory of a Step Functions send task (GB).
pub const SEND_TASK_GB: f64 = 0.125;

/// Which part of the bill a line is: what both designs receive alike (the webhooks and
/// their ingress), or the orchestration that differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Ingress,
    Orchestration,
}

#[derive(Clone, Debug)]
pub struct Line {
    pub part: Part,
    pub item: String,
    /// Dollars per 1,000 flows.
    pub per_1000: f64,
}

fn line(part: Part, item: String, per_flow: f64) -> Line {
    Line {
        part,
        item,
        per_1000: per_flow * 1000.0,
    }
}

/// The webhook function and, with `http_api`, the HTTP API in front of it (a function URL
/// has no charge per request). The same on both sides.
fn ingress(u: &FlowUsage, p: &Prices, http_api: bool) -> Vec<Line> {
    let mut lines = vec![line(
        Part::Ingress,
        format!(
            "webhook function: {:.0} requests, {:.2} GB-s",
            u.webhooks * 1000.0,
            u.webhook_gb_seconds * 1000.0
        ),
        u.webhooks * p.lambda_request + u.webhook_gb_seconds * p.lambda_gb_second,
    )];
    if http_api {
        lines.push(line(
            Part::Ingress,
            format!("HTTP API: {:.0} requests", u.webhooks * 1000.0),
            u.webhooks * p.http_api_request,
        ));
    }
    lines
}

/// Assent: the table, the step function and the Scheduler, plus the ingress.
pub fn assent(u: &FlowUsage, p: &Prices, http_api: bool) -> Vec<Line> {
    let mut lines = vec![
        line(
            Part::Orchestration,
            format!(
                "DynamoDB: {:.0} WRU, {:.0} RRU",
                u.write_units * 1000.0,
                u.read_units * 1000.0
            ),
            u.write_units * p.write_unit + u.read_units * p.read_unit,
        ),
        line(
            Part::Orchestration,
            format!(
                "step function: {:.0} requests, {:.2} GB-s",
                u.step_invocations * 1000.0,
                u.step_gb_seconds * 1000.0
            ),
            u.step_invocations * p.lambda_request + u.step_gb_seconds * p.lambda_gb_second,
        ),
        line(
            Part::Orchestration,
            format!(
                "Scheduler: {:.0} invocations",
                u.scheduler_invocations * 1000.0
            ),
            u.scheduler_invocations * p.scheduler_invocation,
        ),
    ];
    lines.extend(ingress(u, p, http_api));
    lines
}

/// The same flows on Step Functions Standard: its transitions, a Lambda task per send,
/// the items Assent keeps too (ledger records, segment entry) and the task token where
/// the webhook can find it (one write, one read), plus the same ingress.
pub fn step_functions(u: &FlowUsage, p: &Prices, http_api: bool) -> Vec<Line> {
    let task_gb_seconds = u.sends * SEND_TASK_GB * u.send_seconds;
    let mut lines = vec![
        line(
            Part::Orchestration,
            format!("state transitions: {:.0}", TRANSITIONS * 1000.0),
            TRANSITIONS * p.state_transition,
        ),
        line(
            Part::Orchestration,
            format!(
                "send tasks: {:.0} requests, {:.2} GB-s",
                u.sends * 1000.0,
                task_gb_seconds * 1000.0
            ),
            u.sends * p.lambda_request + task_gb_seconds * p.lambda_gb_second,
        ),
        line(
            Part::Orchestration,
            format!(
                "DynamoDB: {:.0} WRU, 1000 RRU (ledger, segment, task token)",
                (SHARED_WRITE_UNITS + 1.0) * 1000.0
            ),
            (SHARED_WRITE_UNITS + 1.0) * p.write_unit + p.read_unit,
        ),
    ];
    lines.extend(ingress(u, p, http_api));
    lines
}

/// Dollars per 1,000 flows of the lines in `parts`.
pub fn total(lines: &[Line], parts: &[Part]) -> f64 {
    lines
        .iter()
        .filter(|l| parts.contains(&l.part))
        .map(|l| l.per_1000)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flow docs/PERFORMANCE.md prices by hand: 10 WRU, 2 RRU, 11 webhooks at 128 MB
    /// for 10 ms, 2 step invocations at 256 MB for 360 ms in all, 3 sends of 110 ms.
    fn documented() -> FlowUsage {
        FlowUsage {
            write_units: 10.0,
            read_units: 2.0,
            webhooks: 11.0,
            webhook_gb_seconds: 11.0 * 0.125 * 0.010,
            step_invocations: 2.0,
            step_gb_seconds: 0.25 * 0.36,
            scheduler_invocations: 0.0,
            sends: 3.0,
            send_seconds: 0.11,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn assent_is_the_table_the_step_function_and_the_ingress() {
        let lines = assent(&documented(), &US_EAST_1, true);
        // 10 x 0.625 + 2 x 0.125 = 6.5 micro-dollars a flow.
        assert!(close(total(&lines[..1], &[Part::Orchestration]), 0.0065));
        // 2 requests x 0.2 + 0.09 GB-s x 13.3334 = 1.6 micro-dollars a flow.
        assert!(close(lines[1].per_1000, 0.0004 + 0.09 * 0.0133334));
        // 11 requests x (0.2 + 1.0) + 0.01375 GB-s x 13.3334.
        let ingress = total(&lines, &[Part::Ingress]);
        assert!(close(ingress, 0.0022 + 0.011 + 0.01375 * 0.0133334));
        let without_api = total(&assent(&documented(), &US_EAST_1, false), &[Part::Ingress]);
        assert!(close(ingress - without_api, 0.011));
    }

    #[test]
    fn step_functions_pays_transitions_tasks_and_the_same_items() {
        let lines = step_functions(&documented(), &US_EAST_1, false);
        let orchestration = total(&lines, &[Part::Orchestration]);
        // 7 x 25 + 3 x 0.2 + 0.04125 GB-s x 13.3334 + 5 x 0.625 + 0.125.
        let expected = 0.175 + 0.0006 + 0.04125 * 0.0133334 + 0.003125 + 0.000125;
        assert!(close(orchestration, expected), "{orchestration}");
        let same = total(&assent(&documented(), &US_EAST_1, false), &[Part::Ingress]);
        assert!(close(total(&lines, &[Part::Ingress]), same));
    }
}
