//! Parsing PostgreSQL text-format values (`t`/`f`, integers, json) into
//! [`super::Field`]s, and building typed rows from columns matched by name.
//!
//! One code path serves both sources of rows: the pgoutput stream (values in
//! relation column order, possibly "unchanged TOAST") and the backfill
//! (`SELECT col::text ...`, values as `Option<&str>`). Both first match their
//! column names once into a [`ColumnMap`], then build each row by position,
//! so a row costs no string comparison per column.
//!
//! Invariant 6: a value that does not parse is a [`RowError`] naming table,
//! column and row id, for the caller to report and park; it is never dropped
//! silently. A column missing from the source (an older Chatwoot) is
//! [`Field::Null`]; columns the bridge does not read are ignored.

use super::rows::{AccountRow, AttachmentRow, ContactRow, ConversationRow, HookRow, MessageRow};
use super::{Field, Row, Table};

/// One column's value in PostgreSQL text format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextValue<'a> {
    Null,
    /// Unchanged TOASTed value (stream only): becomes [`Field::Unchanged`].
    Unchanged,
    Text(&'a str),
}

impl<'a> From<Option<&'a str>> for TextValue<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(TextValue::Null, TextValue::Text)
    }
}

/// A source value that can be read as a [`TextValue`]. The conversion runs
/// only for columns the bridge keeps, so e.g. a binary or non-UTF-8 value in
/// an ignored column costs nothing and is no error.
pub trait ToTextValue<'a> {
    fn to_text_value(self) -> Result<TextValue<'a>, ValueProblem>;
}

impl<'a> ToTextValue<'a> for TextValue<'a> {
    fn to_text_value(self) -> Result<TextValue<'a>, ValueProblem> {
        Ok(self)
    }
}

impl<'a> ToTextValue<'a> for Option<&'a str> {
    fn to_text_value(self) -> Result<TextValue<'a>, ValueProblem> {
        Ok(self.into())
    }
}

/// Why one value could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    #[error("is not a valid {expected}: {value:?}")]
    Invalid {
        expected: &'static str,
        /// The start of the offending text (at most 80 characters).
        value: String,
    },
    #[error("is not valid JSON ({reason}): {value:?}")]
    InvalidJson { reason: String, value: String },
    #[error("is NULL or unchanged, but the primary key must have a value")]
    NullKey,
    #[error("is missing: the primary key `id` must be among the columns")]
    MissingKey,
    #[error("is not UTF-8 text")]
    NotUtf8,
    #[error("arrived in binary format, which the bridge does not request")]
    Binary,
}

/// A row that could not be built: which table, column and row, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Chatwoot {table} row {}: column {column} {problem}",
        .id.map_or_else(|| "with unknown id".to_owned(), |id| format!("id={id}")))]
pub struct RowError {
    pub table: &'static str,
    pub column: &'static str,
    /// `None` when the id itself is missing or unreadable.
    pub id: Option<i64>,
    pub problem: ValueProblem,
}

/// For one source's column layout, which row field each column feeds.
/// Built once per layout (a pgoutput Relation message, a backfill query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    table: Table,
    /// Per source column position: index into `table.columns()`, or `None`
    /// for a column the bridge does not read.
    fields: Vec<Option<u8>>,
}

impl ColumnMap {
    /// Matches the source's column names against the columns the bridge
    /// reads from `table`.
    pub fn new<'n>(table: Table, source_columns: impl IntoIterator<Item = &'n str>) -> ColumnMap {
        let wanted = table.columns();
        let fields = source_columns
            .into_iter()
            .map(|name| {
                wanted
                    .iter()
                    .position(|w| *w == name)
                    .and_then(|i| u8::try_from(i).ok())
            })
            .collect();
        ColumnMap { table, fields }
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// Number of source columns.
    pub fn source_len(&self) -> usize {
        self.fields.len()
    }

    /// Builds a row from values in source column order. Missing trailing
    /// values read as NULL; values beyond the layout are ignored.
    pub fn build_row<'a, V: ToTextValue<'a>>(
        &self,
        values: impl IntoIterator<Item = V>,
    ) -> Result<Row, RowError> {
        let values = values.into_iter();
        match self.table {
            Table::Accounts => build::<AccountRow, _>(&self.fields, values),
            Table::IntegrationsHooks => build::<HookRow, _>(&self.fields, values),
            Table::Contacts => build::<ContactRow, _>(&self.fields, values),
            Table::Conversations => build::<ConversationRow, _>(&self.fields, values),
            Table::Messages => build::<MessageRow, _>(&self.fields, values),
            Table::Attachments => build::<AttachmentRow, _>(&self.fields, values),
        }
    }
}

/// Builds a row from `(column name, value)` pairs, e.g. one backfill row of
/// `SELECT col::text ...`. For many rows of one query, build a [`ColumnMap`]
/// once and call [`ColumnMap::build_row`] instead.
pub fn row_from_named<'a>(
    table: Table,
    columns: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Row, RowError> {
    let (names, values): (Vec<&str>, Vec<Option<&str>>) = columns.into_iter().unzip();
    ColumnMap::new(table, names).build_row(values)
}

/// How one row field is set from text.
struct FieldSpec<R> {
    name: &'static str,
    set: fn(&mut R, TextValue<'_>) -> Result<(), ValueProblem>,
}

/// A typed row whose fields are listed in `Table::columns()` order, the
/// primary key first.
trait TypedRow: Default + 'static {
    const TABLE: Table;
    const FIELDS: &'static [FieldSpec<Self>];
    fn id(&self) -> i64;
    fn into_row(self) -> Row;
}

fn build<'a, R: TypedRow, V: ToTextValue<'a>>(
    fields: &[Option<u8>],
    values: impl Iterator<Item = V>,
) -> Result<Row, RowError> {
    let mut row = R::default();
    let mut have_id = false;
    let mut first_error: Option<(&'static str, ValueProblem)> = None;
    for (field, value) in fields.iter().zip(values) {
        let Some(field) = *field else { continue };
        let spec = &R::FIELDS[usize::from(field)];
        match value.to_text_value().and_then(|v| (spec.set)(&mut row, v)) {
            Ok(()) => have_id |= field == 0,
            // Keep going so that the error can name the row's id.
            Err(problem) => {
                first_error.get_or_insert((spec.name, problem));
            }
        }
    }
    let error = |column, problem| RowError {
        table: R::TABLE.name(),
        column,
        id: have_id.then(|| row.id()),
        problem,
    };
    if let Some((column, problem)) = first_error {
        return Err(error(column, problem));
    }
    if !have_id {
        return Err(error("id", ValueProblem::MissingKey));
    }
    Ok(row.into_row())
}

fn set_id(id: &mut i64, value: TextValue<'_>) -> Result<(), ValueProblem> {
    match value {
        TextValue::Text(text) => {
            *id = parse_i64(text)?;
            Ok(())
        }
        TextValue::Null | TextValue::Unchanged => Err(ValueProblem::NullKey),
    }
}

fn set_field<T>(
    field: &mut Field<T>,
    value: TextValue<'_>,
    parse: fn(&str) -> Result<T, ValueProblem>,
) -> Result<(), ValueProblem> {
    *field = match value {
        TextValue::Null => Field::Null,
        TextValue::Unchanged => Field::Unchanged,
        TextValue::Text(text) => Field::Value(parse(text)?),
    };
    Ok(())
}

fn invalid(expected: &'static str, text: &str) -> ValueProblem {
    ValueProblem::Invalid {
        expected,
        value: snippet(text),
    }
}

fn snippet(text: &str) -> String {
    text.chars().take(80).collect()
}

/// `int8` (and smaller integers) in text format.
pub fn parse_i64(text: &str) -> Result<i64, ValueProblem> {
    text.parse().map_err(|_| invalid("64-bit integer", text))
}

/// `int4` (and smaller integers) in text format.
pub fn parse_i32(text: &str) -> Result<i32, ValueProblem> {
    text.parse().map_err(|_| invalid("32-bit integer", text))
}

/// `boolean`: `t`/`f` from the output function (pgoutput), `true`/`false`
/// from a `::text` cast (the backfill).
pub fn parse_bool(text: &str) -> Result<bool, ValueProblem> {
    match text {
        "t" | "true" => Ok(true),
        "f" | "false" => Ok(false),
        _ => Err(invalid("boolean (t/f)", text)),
    }
}

/// `json` or `jsonb` text.
pub fn parse_json(text: &str) -> Result<serde_json::Value, ValueProblem> {
    serde_json::from_str(text).map_err(|e| ValueProblem::InvalidJson {
        reason: e.to_string(),
        value: snippet(text),
    })
}

/// Strings and timestamps (kept as PostgreSQL printed them).
pub fn parse_string(text: &str) -> Result<String, ValueProblem> {
    Ok(text.to_owned())
}

/// Lists a row type's fields (after `id`) with their parsers, in
/// `COLUMNS` order; the field name is the column name.
macro_rules! typed_row {
    ($row:ident, $variant:ident, $table:ident { $($field:ident: $parse:ident),* $(,)? }) => {
        impl TypedRow for $row {
            const TABLE: Table = Table::$table;
            const FIELDS: &'static [FieldSpec<Self>] = &[
                FieldSpec { name: "id", set: |r, v| set_id(&mut r.id, v) },
                $(FieldSpec {
                    name: stringify!($field),
                    set: |r, v| set_field(&mut r.$field, v, $parse),
                },)*
            ];
            fn id(&self) -> i64 {
                self.id
            }
            fn into_row(self) -> Row {
                Row::$variant(self)
            }
        }
    };
}

typed_row!(
    AccountRow,
    Account,
    Accounts {
        name: parse_string,
        feature_flags: parse_i64,
    }
);

typed_row!(
    HookRow,
    IntegrationsHook,
    IntegrationsHooks {
        account_id: parse_i64,
        app_id: parse_string,
        status: parse_i32,
        hook_type: parse_i32,
        inbox_id: parse_i64,
        settings: parse_json,
    }
);

typed_row!(
    ContactRow,
    Contact,
    Contacts {
        account_id: parse_i64,
        name: parse_string,
        email: parse_string,
        phone_number: parse_string,
        identifier: parse_string,
        additional_attributes: parse_json,
    }
);

typed_row!(
    ConversationRow,
    Conversation,
    Conversations {
        account_id: parse_i64,
        inbox_id: parse_i64,
        contact_id: parse_i64,
        display_id: parse_i64,
        status: parse_i32,
        priority: parse_i32,
        additional_attributes: parse_json,
        created_at: parse_string,
    }
);

typed_row!(
    MessageRow,
    Message,
    Messages {
        account_id: parse_i64,
        conversation_id: parse_i64,
        message_type: parse_i32,
        content_type: parse_i32,
        content: parse_string,
        processed_message_content: parse_string,
        private: parse_bool,
        sender_type: parse_string,
        sender_id: parse_i64,
        content_attributes: parse_json,
        created_at: parse_string,
    }
);

typed_row!(
    AttachmentRow,
    Attachment,
    Attachments {
        account_id: parse_i64,
        message_id: parse_i64,
        file_type: parse_i32,
        external_url: parse_string,
        fallback_title: parse_string,
        extension: parse_string,
    }
);

#[cfg(test)]
mod tests;
