//! The tables of the store file, and what each key and value is.

use redb::TableDefinition;

/// contact id -> the record with its version ([`StoredRecord`](super::stored_record::StoredRecord))
pub(super) const CONTACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contacts");
/// (contact id, arrival seq) -> InboxItem
pub(super) const INBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("inbox");
/// (contact id, dedup key) -> received_at ms. Outlives the inbox item, so that a provider
/// retry days later is still recognised; pruned after [`DEDUP_RETENTION_MS`].
pub(super) const INBOX_KEYS: TableDefinition<(&str, &str), i64> =
    TableDefinition::new("inbox_keys");
/// contact id -> 1, while the contact has inbox items or outbox effects left.
pub(super) const PENDING: TableDefinition<&str, u8> = TableDefinition::new("pending");
/// (contact id, run, wait seq) -> deadline ms
pub(super) const TIMERS: TableDefinition<(&str, u64, u64), i64> = TableDefinition::new("timers");
/// (workflow id, version) -> PublishedWorkflow
pub(super) const WORKFLOWS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("workflows");
/// (tag, contact id) -> 1: the segment index, kept in step with the records at commit.
pub(super) const SEGMENTS: TableDefinition<(&str, &str), u8> = TableDefinition::new("segments");
/// workflow id -> draft definition (JSON)
pub(super) const DRAFTS: TableDefinition<&str, &[u8]> = TableDefinition::new("drafts");
/// (contact id, seq) -> ConsentRecord. Never pruned.
pub(super) const LEDGER: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("ledger");
/// settings: the active workflow, as JSON `[id, version]` under [`ACTIVE_KEY`]
pub(super) const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
pub(super) const ACTIVE_KEY: &str = "active_workflow";
/// counters: "inbox_seq"
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Meta retries an undelivered webhook for up to 7 days; a day more, as the DynamoDB
/// store's TTL keeps them, so that pruning never races a retry at the window's end.
pub(super) const DEDUP_RETENTION_MS: i64 = 8 * 24 * 3600 * 1000;
