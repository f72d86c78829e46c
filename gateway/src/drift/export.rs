//! Reading an IdP's export into an [`Export`]: SCIM JSON (a `ListResponse`, an array of resources
//! or of `ListResponse` pages, JSON Lines, or `{"Users": …, "Groups": …}`) or CSV (`userName`,
//! `externalId`, `active`, `groups`, …, in the dialects spreadsheets write). JSON is read as roster
//! reads SCIM: booleans with `scim::resource::lenient_bool`, the primary email with
//! `scim::resource::primary_element`. Memberships come from groups' `members` and from users' own
//! `groups` attribute alike; a CSV names groups only through members. [`Carried`] records what
//! the export holds, and so what is compared.

use std::collections::{BTreeSet, HashMap, HashSet};

use roster_scim::resource::{lenient_bool, primary_element};
use serde_json::{Map, Value};

use super::{GroupEntry, UserEntry, fold};

/// What is wrong with an export file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the export is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the CSV export is malformed: {0}")]
    Csv(String),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ExportError {
    ExportError::Invalid(message.into())
}

/// How an export is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    Json,
    Csv,
}

impl InputFormat {
    /// By content: JSON starts with `{` or `[` (after whitespace); anything else is CSV.
    pub fn detect(text: &str) -> InputFormat {
        match strip_bom(text).trim_start().chars().next() {
            Some('{' | '[') => InputFormat::Json,
            _ => InputFormat::Csv,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Json => "json",
            InputFormat::Csv => "csv",
        }
    }
}

/// How a CSV export is written: spreadsheets in many locales separate with `;` (or tabs), Excel
/// may open with a `sep=;` line, and Windows PowerShell's `Export-Csv` with a `#TYPE …` line.
struct CsvDialect<'a> {
    delimiter: u8,
    /// The text from the header line on.
    body: &'a str,
    /// Lines before the header (for line numbers in errors).
    skipped_lines: u64,
}

impl<'a> CsvDialect<'a> {
    fn of(text: &'a str) -> Self {
        let mut body = text;
        let mut declared = None;
        let mut skipped_lines = 0;
        loop {
            let (line, rest) = body.split_once('\n').unwrap_or((body, ""));
            let line = line.trim();
            let lowered = line.to_ascii_lowercase();
            if let Some(separator) = lowered.strip_prefix("sep=") {
                declared = separator.bytes().next().or(declared);
            } else if !lowered.starts_with("#type") {
                break;
            }
            body = rest;
            skipped_lines += 1;
        }
        let header = body.lines().next().unwrap_or_default();
        let delimiter = declared.unwrap_or(if header.contains(',') {
            b','
        } else if header.contains(';') {
            b';'
        } else if header.contains('\t') {
            b'\t'
        } else {
            b','
        });
        Self {
            delimiter,
            body,
            skipped_lines,
        }
    }
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// A member of a group in the export.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ExportMember {
    /// The export's user this member is, when the export holds it.
    pub(super) user: Option<usize>,
    /// The member's `value` (an id) and `display`, to resolve it otherwise.
    pub(super) value: Option<String>,
    pub(super) display: Option<String>,
}

/// The user attributes beyond `userName` and `active` that a drift report can compare, in
/// report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserAttribute {
    ExternalId,
    DisplayName,
    GivenName,
    FamilyName,
    PrimaryEmail,
}

impl UserAttribute {
    pub(super) const ALL: [UserAttribute; 5] = [
        UserAttribute::ExternalId,
        UserAttribute::DisplayName,
        UserAttribute::GivenName,
        UserAttribute::FamilyName,
        UserAttribute::PrimaryEmail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserAttribute::ExternalId => "externalId",
            UserAttribute::DisplayName => "displayName",
            UserAttribute::GivenName => "name.givenName",
            UserAttribute::FamilyName => "name.familyName",
            UserAttribute::PrimaryEmail => "primaryEmail",
        }
    }

    pub(super) fn of(self, user: &UserEntry) -> Option<&str> {
        match self {
            UserAttribute::ExternalId => user.external_id.as_deref(),
            UserAttribute::DisplayName => user.display_name.as_deref(),
            UserAttribute::GivenName => user.given_name.as_deref(),
            UserAttribute::FamilyName => user.family_name.as_deref(),
            UserAttribute::PrimaryEmail => user.email.as_deref(),
        }
    }
}

/// What an export carries, and so what is compared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Carried {
    pub users: bool,
    pub groups: bool,
    /// Groups are known only through their members (CSV): roster groups without members are not
    /// reported missing.
    pub groups_by_members_only: bool,
    pub memberships: bool,
    pub user_attributes: BTreeSet<UserAttribute>,
    pub group_external_id: bool,
}

/// An IdP export, parsed.
#[derive(Clone, Debug, Default)]
pub struct Export {
    pub format: Option<InputFormat>,
    pub users: Vec<UserEntry>,
    pub groups: Vec<GroupEntry>,
    pub(super) members: Vec<Vec<ExportMember>>,
    pub carried: Carried,
}

pub(super) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(super) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    User,
    Group,
}

/// A field of a JSON object, its name matched case-insensitively (SCIM attribute names are).
fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

fn has_schema(object: &Map<String, Value>, schema: &str) -> bool {
    match get_ci(object, "schemas") {
        Some(Value::Array(schemas)) => schemas.iter().any(|item| {
            item.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(schema))
        }),
        _ => false,
    }
}

/// A CSV cell read as a boolean: `true`/`false`, `yes`/`no` or `1`/`0`, in any case. CSV is not
/// SCIM, and IdPs' CSV exports write all of these; JSON values are read with `lenient_bool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// An optional string attribute: absent and null are `None`; other types are an error.
fn optional_string(
    object: &Map<String, Value>,
    name: &str,
    what: &dyn Fn() -> String,
) -> Result<Option<String>, ExportError> {
    match get_ci(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("{}: {name} must be a string", what()))),
    }
}

/// The primary email of a SCIM `emails` value: the one marked primary, else the first.
fn primary_email(emails: Option<&Value>) -> Option<String> {
    // As roster reads a user's `emails`: the primary element (or the first, or one given alone),
    // an object with a `value` or the address itself.
    let address = match primary_element(emails?)? {
        Value::String(text) => Some(text.as_str()),
        Value::Object(object) => get_ci(object, "value").and_then(Value::as_str),
        _ => None,
    };
    address.filter(|value| !value.is_empty()).map(str::to_owned)
}

/// The attributes roster and JSON exports keep beyond the core ones.
pub(super) fn user_details(object: &Map<String, Value>, user: &mut UserEntry) {
    user.display_name = get_ci(object, "displayName")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_owned);
    if let Some(Value::Object(name)) = get_ci(object, "name") {
        let part = |key| {
            get_ci(name, key)
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        user.given_name = part("givenName");
        user.family_name = part("familyName");
    }
    user.email = primary_email(get_ci(object, "emails"));
}

impl Export {
    /// Parses an export; `format` `None`: detected from the content.
    pub fn parse(text: &str, format: Option<InputFormat>) -> Result<Export, ExportError> {
        let text = strip_bom(text);
        let format = format.unwrap_or_else(|| InputFormat::detect(text));
        let mut export = match format {
            InputFormat::Json => Self::from_json(text)?,
            InputFormat::Csv => Self::from_csv(text)?,
        };
        export.format = Some(format);
        export.check_unique()?;
        Ok(export)
    }

    fn from_json(text: &str) -> Result<Export, ExportError> {
        // Several top-level documents (JSON Lines, or pages appended by `curl >>` or `jq`) are
        // read as an array of them.
        let mut documents = serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect::<Result<Vec<Value>, _>>()?;
        let document = if documents.len() == 1 {
            documents.remove(0)
        } else {
            Value::Array(documents)
        };
        let mut resources = Vec::new();
        let mut export = Export::default();
        let mut listings = Listings::new();
        collect(
            &document,
            None,
            &mut resources,
            &mut export.carried,
            &mut listings,
        )?;
        check_complete(&listings)?;
        let mut groups = Vec::new();
        let mut user_groups = Vec::new();
        // Overlapping pages (a paging off-by-one, an unstable order) repeat resources: the same
        // resource twice is read once; two different ones under one id stay, and are refused
        // below if they clash.
        let mut seen: HashMap<(Kind, &str), &Map<String, Value>> = HashMap::new();
        for (index, (kind, object)) in resources.into_iter().enumerate() {
            if let Some(id) = get_ci(object, "id").and_then(Value::as_str) {
                match seen.get(&(kind, id)) {
                    Some(earlier) if *earlier == object => continue,
                    Some(_) => {}
                    None => {
                        seen.insert((kind, id), object);
                    }
                }
            }
            let what = || format!("resource #{} of the export", index + 1);
            match kind {
                Kind::User => {
                    export.add_json_user(object, &what)?;
                    if let Some(references) = group_references(object, &what)? {
                        user_groups.push((export.users.len() - 1, references));
                    }
                }
                Kind::Group => groups.push((object, index)),
            }
        }
        // Members name users by the export's ids: index those first.
        let by_id: HashMap<&str, usize> = export
            .users
            .iter()
            .enumerate()
            .filter_map(|(index, user)| user.id.as_deref().map(|id| (id, index)))
            .collect();
        // A member naming a group of the export is a nested group, whatever its `type` says.
        let group_ids: HashSet<&str> = groups
            .iter()
            .filter_map(|(object, _)| get_ci(object, "id").and_then(Value::as_str))
            .collect();
        let mut parsed = Vec::new();
        for (object, index) in &groups {
            let what = || format!("resource #{} of the export", index + 1);
            parsed.push(group_from_json(
                object,
                &by_id,
                &group_ids,
                &what,
                &mut export.carried,
            )?);
        }
        for (group, members) in parsed {
            export.groups.push(group);
            export.members.push(members);
        }
        if !user_groups.is_empty() {
            export.add_user_memberships(user_groups)?;
        }
        if !export.carried.users && !export.carried.groups {
            return Err(invalid(
                "the export holds no Users or Groups (an empty ListResponse says neither which \
                 it lists; use {\"Users\": …, \"Groups\": …} to export an empty directory)",
            ));
        }
        Ok(export)
    }

    fn add_json_user(
        &mut self,
        object: &Map<String, Value>,
        what: &dyn Fn() -> String,
    ) -> Result<(), ExportError> {
        let user_name = match get_ci(object, "userName") {
            Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
            _ => return Err(invalid(format!("{}: a User needs a userName", what()))),
        };
        let what = || format!("{} (user {user_name:?})", what());
        let mut user = UserEntry {
            id: optional_string(object, "id", &what)?,
            user_name: user_name.clone(),
            external_id: optional_string(object, "externalId", &what)?,
            ..UserEntry::default()
        };
        user.active = match get_ci(object, "active") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                lenient_bool(value)
                    .ok_or_else(|| invalid(format!("{}: active must be a boolean", what())))?,
            ),
        };
        user_details(object, &mut user);
        let carried = &mut self.carried.user_attributes;
        if get_ci(object, "externalId").is_some() {
            carried.insert(UserAttribute::ExternalId);
        }
        if get_ci(object, "displayName").is_some() {
            carried.insert(UserAttribute::DisplayName);
        }
        if let Some(Value::Object(name)) = get_ci(object, "name") {
            if get_ci(name, "givenName").is_some() {
                carried.insert(UserAttribute::GivenName);
            }
            if get_ci(name, "familyName").is_some() {
                carried.insert(UserAttribute::FamilyName);
            }
        }
        if get_ci(object, "emails").is_some() {
            carried.insert(UserAttribute::PrimaryEmail);
        }
        self.carried.users = true;
        self.users.push(user);
        Ok(())
    }

    /// Adds the memberships users state in their own `groups` attribute. A reference names a
    /// group of the export by its `id` (`value`), else by `displayName` (`display`); a group the
    /// export does not list is known through its members only, as in a CSV. A membership both a
    /// group's `members` and a user's `groups` state counts once.
    fn add_user_memberships(
        &mut self,
        user_groups: Vec<(usize, Vec<GroupReference>)>,
    ) -> Result<(), ExportError> {
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (index, group) in self.groups.iter().enumerate() {
            if let Some(id) = &group.id {
                by_id.insert(id.clone(), index);
            }
            by_name.insert(fold(&group.display_name), index);
        }
        // A reference naming no group of the export and carrying no display name cannot be
        // compared with anything: then users' `groups` state nothing, rather than half of the
        // memberships (which would read as drift).
        let resolvable = user_groups.iter().all(|(_, references)| {
            references.iter().all(|reference| {
                reference.display.is_some()
                    || reference
                        .value
                        .as_ref()
                        .is_some_and(|id| by_id.contains_key(id))
            })
        });
        if !resolvable {
            return Ok(());
        }
        if !self.carried.groups {
            self.carried.groups_by_members_only = true;
        }
        self.carried.groups = true;
        self.carried.memberships = true;
        // Who each group already lists (by export user, and by member value), so that checking
        // a reference costs O(1) even for a group of 100,000 members.
        let mut listed: Vec<(HashSet<usize>, HashSet<String>)> = self
            .members
            .iter()
            .map(|members| {
                (
                    members.iter().filter_map(|member| member.user).collect(),
                    members
                        .iter()
                        .filter_map(|member| member.value.clone())
                        .collect(),
                )
            })
            .collect();
        for (user, references) in user_groups {
            for reference in references {
                let known = reference
                    .value
                    .as_ref()
                    .and_then(|id| by_id.get(id))
                    .or_else(|| {
                        reference
                            .display
                            .as_ref()
                            .and_then(|name| by_name.get(&fold(name)))
                    })
                    .copied();
                let group = match known {
                    Some(group) => group,
                    None => {
                        let Some(display_name) = reference.display else {
                            // Checked above: every reference without a display name is listed.
                            continue;
                        };
                        let index = self.groups.len();
                        if let Some(id) = &reference.value {
                            by_id.insert(id.clone(), index);
                        }
                        by_name.insert(fold(&display_name), index);
                        self.groups.push(GroupEntry {
                            id: reference.value,
                            display_name,
                            external_id: None,
                            member_count: 0,
                        });
                        self.members.push(Vec::new());
                        listed.push(Default::default());
                        index
                    }
                };
                let user_id = self.users[user].id.as_deref();
                let (by_user, by_value) = &mut listed[group];
                let already =
                    by_user.contains(&user) || user_id.is_some_and(|id| by_value.contains(id));
                if !already {
                    by_user.insert(user);
                    if let Some(id) = user_id {
                        by_value.insert(id.to_owned());
                    }
                    self.members[group].push(ExportMember {
                        user: Some(user),
                        value: user_id.map(str::to_owned),
                        display: None,
                    });
                    self.groups[group].member_count += 1;
                }
            }
        }
        Ok(())
    }

    fn from_csv(text: &str) -> Result<Export, ExportError> {
        let dialect = CsvDialect::of(text);
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .delimiter(dialect.delimiter)
            .from_reader(dialect.body.as_bytes());
        let headers = reader
            .headers()
            .map_err(|error| ExportError::Csv(error.to_string()))?
            .clone();
        // Each column roster reads, under its names (the report's own names are accepted too).
        let known: [&[&str]; 8] = [
            &["userName"],
            &["externalId"],
            &["active"],
            &["groups"],
            &["displayName"],
            &["givenName", "name.givenName"],
            &["familyName", "name.familyName"],
            &["email", "primaryEmail"],
        ];
        for names in known {
            let found: Vec<&str> = headers
                .iter()
                .filter(|header| names.iter().any(|name| header.eq_ignore_ascii_case(name)))
                .collect();
            if found.len() > 1 {
                return Err(ExportError::Csv(format!(
                    "the header names one column twice ({}): keep one",
                    found.join(", ")
                )));
            }
        }
        let column = |name: &str| {
            let names = known
                .iter()
                .find(|names| names[0] == name)
                .copied()
                .unwrap_or(&[]);
            headers.iter().position(|header| {
                header.eq_ignore_ascii_case(name)
                    || names.iter().any(|alias| header.eq_ignore_ascii_case(alias))
            })
        };
        let user_name_column = column("userName").ok_or_else(|| {
            ExportError::Csv(format!(
                "the header has no userName column (it reads {:?}; expected userName, \
                 externalId, active, groups)",
                headers.iter().collect::<Vec<_>>().join(",")
            ))
        })?;
        let external_id = column("externalId");
        let active = column("active");
        let groups = column("groups");
        let attributes = [
            (UserAttribute::DisplayName, column("displayName")),
            (UserAttribute::GivenName, column("givenName")),
            (UserAttribute::FamilyName, column("familyName")),
            (UserAttribute::PrimaryEmail, column("email")),
        ];
        let mut export = Export::default();
        export.carried.users = true;
        if external_id.is_some() {
            export
                .carried
                .user_attributes
                .insert(UserAttribute::ExternalId);
        }
        for (attribute, index) in attributes {
            if index.is_some() {
                export.carried.user_attributes.insert(attribute);
            }
        }
        if groups.is_some() {
            export.carried.groups = true;
            export.carried.groups_by_members_only = true;
            export.carried.memberships = true;
        }
        let mut group_index: HashMap<String, usize> = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|error| ExportError::Csv(error.to_string()))?;
            // Spreadsheets leave rows of bare delimiters (`,,,`) below the data.
            if record.iter().all(str::is_empty) {
                continue;
            }
            let line = record.position().map_or(0, csv::Position::line) + dialect.skipped_lines;
            let cell = |index: Option<usize>| {
                index
                    .and_then(|index| record.get(index))
                    .filter(|text| !text.is_empty())
                    .map(str::to_owned)
            };
            let user_name = cell(Some(user_name_column))
                .ok_or_else(|| ExportError::Csv(format!("line {line}: userName is empty")))?;
            let active = match cell(active) {
                None => None,
                Some(text) => Some(parse_bool(&text).ok_or_else(|| {
                    ExportError::Csv(format!(
                        "line {line}: active must be true or false, not {text:?}"
                    ))
                })?),
            };
            let user = UserEntry {
                id: None,
                user_name,
                external_id: cell(external_id),
                active,
                display_name: cell(attributes[0].1),
                given_name: cell(attributes[1].1),
                family_name: cell(attributes[2].1),
                email: cell(attributes[3].1),
                handle: None,
            };
            let user_index = export.users.len();
            export.users.push(user);
            let mut seen = HashSet::new();
            for name in cell(groups)
                .unwrap_or_default()
                .split(';')
                .map(str::trim)
                .filter(|name| !name.is_empty())
            {
                if !seen.insert(fold(name)) {
                    continue;
                }
                let group = *group_index.entry(fold(name)).or_insert_with(|| {
                    export.groups.push(GroupEntry {
                        id: None,
                        display_name: name.to_owned(),
                        external_id: None,
                        member_count: 0,
                    });
                    export.members.push(Vec::new());
                    export.groups.len() - 1
                });
                export.groups[group].member_count += 1;
                export.members[group].push(ExportMember {
                    user: Some(user_index),
                    value: None,
                    display: None,
                });
            }
        }
        Ok(export)
    }

    /// Two resources of the export claiming one name is a broken export. An externalId may be
    /// shared (the client controls its uniqueness: RFC 7643 §3.1); the comparison reports it as
    /// ambiguous.
    fn check_unique(&self) -> Result<(), ExportError> {
        let mut names = HashSet::new();
        for user in &self.users {
            if !names.insert(fold(&user.user_name)) {
                return Err(invalid(format!(
                    "the export lists userName {:?} twice",
                    user.user_name
                )));
            }
        }
        let mut names = HashSet::new();
        for group in &self.groups {
            if !names.insert(fold(&group.display_name)) {
                return Err(invalid(format!(
                    "the export lists group {:?} twice",
                    group.display_name
                )));
            }
        }
        Ok(())
    }
}

/// A listing's pages as read: the largest `totalResults` one claims, and the distinct resources
/// they hold (by id; those without one counted as they come), so overlapping pages count once.
#[derive(Default)]
struct Listing {
    total: u64,
    ids: HashSet<String>,
    anonymous: u64,
}

/// Per listing: under `Users`, under `Groups`, or anywhere else (a top-level page or array of
/// pages, whose listing may mix kinds as `/.search` at the root does).
type Listings = HashMap<Option<Kind>, Listing>;

/// Refuses an export whose pages hold fewer resources than their `totalResults`: one page of a
/// paged listing (a plain `GET /Users` answers 100 or so) would otherwise report everyone else
/// as only in roster.
fn check_complete(listings: &Listings) -> Result<(), ExportError> {
    for (kind, listing) in listings {
        let (total, held) = (listing.total, listing.ids.len() as u64 + listing.anonymous);
        if held < total {
            let what = match kind {
                Some(Kind::User) => "Users",
                Some(Kind::Group) => "Groups",
                None => "resources",
            };
            return Err(invalid(format!(
                "the export is incomplete: its {what} ListResponse says totalResults {total}, \
                 but its pages hold {held}; fetch every page (startIndex, count) and pass them \
                 together, e.g. as a JSON array of the pages"
            )));
        }
    }
    Ok(())
}

/// Gathers the resources of a JSON export: `ListResponse`s (their `Resources`), arrays of
/// resources or pages, `{"Users": …, "Groups": …}`, or single resources. `hint`: the kind the
/// enclosing `Users`/`Groups` key names.
fn collect<'a>(
    value: &'a Value,
    hint: Option<Kind>,
    resources: &mut Vec<(Kind, &'a Map<String, Value>)>,
    carried: &mut Carried,
    listings: &mut Listings,
) -> Result<(), ExportError> {
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, hint, resources, carried, listings)?;
            }
            Ok(())
        }
        Value::Object(object) => {
            if has_schema(object, ERROR_SCHEMA) {
                return Err(invalid(format!(
                    "the export contains a SCIM error response, not resources: {}",
                    get_ci(object, "detail")
                        .and_then(Value::as_str)
                        .unwrap_or("(no detail)")
                )));
            }
            // A page or a `{"Users": …, "Groups": …}` container, unless the object is a resource
            // itself: a User's own `groups` attribute matches "Groups", and a custom `resources`
            // attribute "Resources" (names are case-insensitive).
            let container = resource_kind(object, None).is_none();
            if let Some(page) = get_ci(object, "Resources").filter(|_| container) {
                let items: &[Value] = match page {
                    Value::Array(items) => items,
                    Value::Null => &[],
                    _ => return Err(invalid("Resources of a ListResponse must be an array")),
                };
                if let Some(total) = get_ci(object, "totalResults").and_then(Value::as_u64) {
                    // Keyed by where the page sits, not by what it holds: the pages of one
                    // `/.search` listing may each hold one kind and share one totalResults.
                    let listing = listings.entry(hint).or_default();
                    listing.total = listing.total.max(total);
                    for item in items {
                        match item.get("id").and_then(Value::as_str) {
                            Some(id) => {
                                listing.ids.insert(id.to_owned());
                            }
                            None => listing.anonymous += 1,
                        }
                    }
                }
                return match page {
                    Value::Array(_) => collect(page, hint, resources, carried, listings),
                    _ => Ok(()),
                };
            }
            let users = get_ci(object, "Users").filter(|_| container);
            let groups = get_ci(object, "Groups").filter(|_| container);
            if users.is_some() || groups.is_some() {
                // `null` under either key: an empty listing, as `"Resources": null` is.
                if let Some(users) = users.filter(|users| !users.is_null()) {
                    collect(users, Some(Kind::User), resources, carried, listings)?;
                }
                if let Some(groups) = groups.filter(|groups| !groups.is_null()) {
                    collect(groups, Some(Kind::Group), resources, carried, listings)?;
                }
                carried.users |= users.is_some();
                carried.groups |= groups.is_some();
                return Ok(());
            }
            if has_schema(object, "urn:ietf:params:scim:api:messages:2.0:ListResponse") {
                // A ListResponse without Resources: an empty page.
                return Ok(());
            }
            let kind = resource_kind(object, hint).ok_or_else(|| {
                invalid(format!(
                    "resource #{} of the export is neither a User nor a Group (no schemas, \
                     meta.resourceType or userName says which)",
                    resources.len() + 1
                ))
            })?;
            resources.push((kind, object));
            Ok(())
        }
        _ => Err(invalid(
            "the export must be a JSON object or array of SCIM resources or ListResponses",
        )),
    }
}

fn resource_kind(object: &Map<String, Value>, hint: Option<Kind>) -> Option<Kind> {
    let declared = get_ci(object, "meta")
        .and_then(Value::as_object)
        .and_then(|meta| get_ci(meta, "resourceType"))
        .and_then(Value::as_str);
    match declared {
        Some(kind) if kind.eq_ignore_ascii_case("User") => return Some(Kind::User),
        Some(kind) if kind.eq_ignore_ascii_case("Group") => return Some(Kind::Group),
        _ => {}
    }
    if has_schema(object, USER_SCHEMA) {
        return Some(Kind::User);
    }
    if has_schema(object, GROUP_SCHEMA) {
        return Some(Kind::Group);
    }
    hint.or_else(|| get_ci(object, "userName").map(|_| Kind::User))
}

/// A group a user names in its own `groups` attribute.
#[derive(Clone, Debug, PartialEq)]
struct GroupReference {
    value: Option<String>,
    display: Option<String>,
}

/// A user's `groups` attribute (`None` when the user has none). Indirect memberships (through a
/// nested group, `type: "indirect"`) are skipped: roster's groups hold users directly.
fn group_references(
    object: &Map<String, Value>,
    what: &dyn Fn() -> String,
) -> Result<Option<Vec<GroupReference>>, ExportError> {
    let items = match get_ci(object, "groups") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid(format!("{}: groups must be an array", what()))),
    };
    let mut references = Vec::new();
    for item in items {
        let Value::Object(entry) = item else {
            return Err(invalid(format!("{}: groups must hold objects", what())));
        };
        let indirect = get_ci(entry, "type")
            .and_then(Value::as_str)
            .is_some_and(|kind| kind.eq_ignore_ascii_case("indirect"));
        if indirect {
            continue;
        }
        let value = optional_string(entry, "value", what)?;
        let display = optional_string(entry, "display", what)?;
        if value.is_none() && display.is_none() {
            return Err(invalid(format!(
                "{}: a groups entry has neither value nor display",
                what()
            )));
        }
        references.push(GroupReference { value, display });
    }
    Ok(Some(references))
}

fn group_from_json(
    object: &Map<String, Value>,
    users_by_id: &HashMap<&str, usize>,
    group_ids: &HashSet<&str>,
    what: &dyn Fn() -> String,
    carried: &mut Carried,
) -> Result<(GroupEntry, Vec<ExportMember>), ExportError> {
    let display_name = match get_ci(object, "displayName") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        _ => return Err(invalid(format!("{}: a Group needs a displayName", what()))),
    };
    let what = || format!("{} (group {display_name:?})", what());
    let mut members = Vec::new();
    match get_ci(object, "members") {
        None => {}
        Some(Value::Null) => carried.memberships = true,
        Some(Value::Array(items)) => {
            carried.memberships = true;
            for item in items {
                let Value::Object(member) = item else {
                    return Err(invalid(format!("{}: members must be objects", what())));
                };
                // roster's groups hold users; nested groups are not compared.
                let value = optional_string(member, "value", &what)?;
                let nested = get_ci(member, "type")
                    .and_then(Value::as_str)
                    .is_some_and(|kind| kind.eq_ignore_ascii_case("Group"))
                    || value
                        .as_deref()
                        .is_some_and(|id| group_ids.contains(id) && !users_by_id.contains_key(id))
                    || get_ci(member, "$ref")
                        .and_then(Value::as_str)
                        .is_some_and(|reference| reference.contains("/Groups/"));
                if nested {
                    continue;
                }
                let display = optional_string(member, "display", &what)?;
                if value.is_none() && display.is_none() {
                    return Err(invalid(format!(
                        "{}: a member has neither value nor display",
                        what()
                    )));
                }
                let user = value.as_deref().and_then(|id| users_by_id.get(id)).copied();
                members.push(ExportMember {
                    user,
                    value,
                    display,
                });
            }
        }
        Some(_) => return Err(invalid(format!("{}: members must be an array", what()))),
    }
    if get_ci(object, "externalId").is_some() {
        carried.group_external_id = true;
    }
    carried.groups = true;
    let id = optional_string(object, "id", &what)?;
    let external_id = optional_string(object, "externalId", &what)?;
    let group = GroupEntry {
        id,
        display_name,
        external_id,
        member_count: members.len() as u64,
    };
    Ok((group, members))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::drift::fixtures::{matching_json, report_for};

    #[test]
    fn csv_quoting_follows_rfc_4180() {
        let csv = "userName,displayName,groups\n\"o'neil\",\"O'Neil, \"\"Pat\"\"\",\"A;B\"\n";
        let export = Export::parse(csv, Some(InputFormat::Csv)).unwrap();
        assert_eq!(
            export.users[0].display_name.as_deref(),
            Some("O'Neil, \"Pat\"")
        );
        assert_eq!(export.groups.len(), 2);
    }

    #[test]
    fn malformed_exports_are_refused_with_a_reason() {
        let cases = [
            ("{\"Resources\": [", "not valid JSON"),
            ("{\"Resources\": []}", "holds no Users or Groups"),
            ("[{\"displayName\": 3}]", "neither a User nor a Group"),
            (
                "[{\"userName\": \"a\", \"active\": \"maybe\"}]",
                "active must be a boolean",
            ),
            (
                "{\"schemas\": [\"urn:ietf:params:scim:api:messages:2.0:Error\"], \"detail\": \"denied\"}",
                "SCIM error response",
            ),
            (
                "[{\"userName\": \"a\"}, {\"userName\": \"A\"}]",
                "userName \"A\" twice",
            ),
            ("name,email\nx,y\n", "no userName column"),
            (
                "userName,active\nx,perhaps\n",
                "line 2: active must be true or false",
            ),
            ("userName,active\nx\n", "malformed"),
            ("userName,active\n\"\",true\n", "line 2: userName is empty"),
        ];
        for (text, expected) in cases {
            let error = Export::parse(text, None).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn users_groups_and_group_members_combine_without_counting_twice() {
        // Engineering lists alice; bob says he is in it too (by the group's id), and alice
        // repeats hers (by display name): Engineering then matches roster exactly.
        let mut export = matching_json();
        let resources = export["Resources"].as_array_mut().unwrap();
        resources[3]["id"] = json!("x-eng");
        resources[3]["members"] = json!([{"value": "i1"}]);
        resources[0]["groups"] = json!([{"display": "engineering"}]);
        resources[1]["groups"] = json!([{"value": "x-eng"}]);
        let parsed = Export::parse(&export.to_string(), None).unwrap();
        assert_eq!(parsed.groups[0].member_count, 2);
        let report = report_for(&export);
        assert!(!report.drift, "{}", report.render_text());

        // A group only the user names, by id alone, cannot be matched: users' `groups` then
        // state no memberships at all (half of them would read as drift).
        let export = json!([{"userName": "alice", "groups": [{"value": "x-unknown"}]},
                            {"userName": "bob", "groups": [{"value": "x-eng", "display": "Eng"}]}]);
        let parsed = Export::parse(&export.to_string(), None).unwrap();
        assert!(!parsed.carried.memberships && parsed.groups.is_empty());
        let export = json!([{"userName": "alice", "groups": null}]);
        let parsed = Export::parse(&export.to_string(), None).unwrap();
        assert!(!parsed.carried.memberships);
        let export = json!([{"userName": "alice", "groups": "Engineering"}]);
        let error = Export::parse(&export.to_string(), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("groups must be an array"), "{error}");
    }

    #[test]
    fn one_page_of_a_paged_listing_is_refused_not_compared() {
        let page = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 3, "itemsPerPage": 1, "startIndex": 1,
            "Resources": [{"userName": "alice"}]});
        let error = Export::parse(&page.to_string(), None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("totalResults 3, but its pages hold 1"),
            "{error}"
        );
        // Every page of it, as an array or one document after another: complete.
        let pages = [
            page.clone(),
            json!({"totalResults": 3, "startIndex": 2, "Resources": [{"userName": "bob"}, {"userName": "carol"}]}),
        ];
        let export = Export::parse(&json!(pages).to_string(), None).unwrap();
        assert_eq!(export.users.len(), 3);
        let lines = format!("{}\n{}\n", pages[0], pages[1]);
        assert_eq!(Export::parse(&lines, None).unwrap().users.len(), 3);
        // Resources one per line (JSON Lines) too.
        let lines = "{\"userName\": \"alice\"}\n{\"userName\": \"bob\"}";
        assert_eq!(Export::parse(lines, None).unwrap().users.len(), 2);
        // Overlapping pages count each resource once.
        let overlapping = json!([
            {"totalResults": 3, "Resources": [{"id": "1", "userName": "a"}, {"id": "2", "userName": "b"}]},
            {"totalResults": 3, "Resources": [{"id": "2", "userName": "b"}]}
        ]);
        assert!(Export::parse(&overlapping.to_string(), None).is_err());
        // Complete listings of Users and Groups are counted apart.
        let both = json!({
            "Users": {"totalResults": 1, "Resources": [{"userName": "alice"}]},
            "Groups": {"totalResults": 2, "Resources": [{"displayName": "A"}]}
        });
        let error = Export::parse(&both.to_string(), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("Groups ListResponse"), "{error}");
    }

    #[test]
    fn null_listings_are_empty_and_blank_csv_rows_are_skipped() {
        let export = json!({"Users": {"Resources": [{"userName": "alice"}]}, "Groups": null});
        let export = Export::parse(&export.to_string(), None).unwrap();
        assert!(export.carried.groups && export.groups.is_empty());
        let export = Export::parse("userName,active\nalice,true\n,\n,\n", None).unwrap();
        assert_eq!(export.users.len(), 1);
    }

    #[test]
    fn overlapping_pages_nested_groups_and_email_shapes_read_as_meant() {
        let mut export = matching_json();
        let resources = export["Resources"].as_array_mut().unwrap();
        // Engineering gains a nested group by id, and by `$ref`, neither typed.
        resources[3]["members"].as_array_mut().unwrap().extend([
            json!({"value": "x-sales"}),
            json!({"value": "zz", "$ref": "https://idp/scim/v2/Groups/zz"}),
        ]);
        resources[3]["id"] = json!("x-eng");
        resources[4]["id"] = json!("x-sales");
        resources[5]["id"] = json!("x-empty");
        // bob's email given alone (an object), carol's as a bare address list.
        resources[1]["emails"] = json!({"value": "bob@x.io", "primary": true});
        resources[2]["emails"] = json!(["carol@x.io"]);
        // The same page twice (overlap): its resources are read once.
        let page = export.clone();
        let twice = json!([page, export]);
        let parsed = Export::parse(&twice.to_string(), None).unwrap();
        assert_eq!(parsed.users.len(), 3);
        assert_eq!(parsed.users[1].email.as_deref(), Some("bob@x.io"));
        assert_eq!(parsed.users[2].email.as_deref(), Some("carol@x.io"));
        assert_eq!(
            parsed.groups[0].member_count, 2,
            "nested groups are not members"
        );
        // Two different resources under one id still clash.
        let clash = json!([{"id": "i1", "userName": "alice"}, {"id": "i1", "userName": "alicia"}]);
        let parsed = Export::parse(&clash.to_string(), None).unwrap();
        assert_eq!(parsed.users.len(), 2);
    }

    #[test]
    fn json_exports_read_booleans_and_the_primary_email_as_roster_does() {
        let mut export = matching_json();
        let resources = export["Resources"].as_array_mut().unwrap();
        // Entra's string booleans count; "yes" is not a SCIM boolean, so it marks nothing
        // primary and the first address stands for the attribute, as roster reads it.
        resources[1]["emails"] = json!([
            {"value": "first@x.io"},
            {"value": "bob@x.io", "primary": "True"}
        ]);
        resources[2]["emails"] = json!([
            {"value": "carol@x.io"},
            {"value": "other@x.io", "primary": "yes"}
        ]);
        let parsed = Export::parse(&export.to_string(), None).unwrap();
        assert_eq!(parsed.users[1].email.as_deref(), Some("bob@x.io"));
        assert_eq!(parsed.users[2].email.as_deref(), Some("carol@x.io"));
        let mut unreadable = matching_json();
        unreadable["Resources"][1]["active"] = json!("yes");
        let error = Export::parse(&unreadable.to_string(), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("active must be a boolean"), "{error}");
    }

    #[test]
    fn csv_from_spreadsheets_in_any_locale_reads_alike() {
        let expected = |export: Export| {
            assert_eq!(export.users.len(), 2);
            assert_eq!(export.users[1].email.as_deref(), Some("bob@x.io"));
            assert_eq!(export.users[1].given_name.as_deref(), Some("Bob"));
            assert_eq!(export.groups.len(), 2, "{:?}", export.groups);
        };
        for text in [
            "userName;primaryEmail;name.givenName;groups\nalice;a@x.io;Alice;A\nbob;bob@x.io;Bob;\"A;B\"\n",
            "sep=;\nuserName;email;givenName;groups\nalice;a@x.io;Alice;A\nbob;bob@x.io;Bob;\"A;B\"\n",
            "#TYPE System.Management.Automation.PSCustomObject\n\"userName\",\"email\",\"givenName\",\"groups\"\r\n\"alice\",\"a@x.io\",\"Alice\",\"A\"\r\n\"bob\",\"bob@x.io\",\"Bob\",\"A;B\"\r\n",
            "userName\temail\tgivenName\tgroups\nalice\ta@x.io\tAlice\tA\nbob\tbob@x.io\tBob\tA;B\n",
        ] {
            match Export::parse(text, Some(InputFormat::Csv)) {
                Ok(export) => expected(export),
                Err(error) => panic!("{text:?}: {error}"),
            }
        }
        // Line numbers count the preamble.
        let error = Export::parse(
            "sep=,\nuserName,active\nx,perhaps\n",
            Some(InputFormat::Csv),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("line 3"), "{error}");
        // One column under two names is refused rather than half read.
        let error = Export::parse("userName,groups,Groups\nalice,,Engineering\n", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("twice (groups, Groups)"), "{error}");
        let error = Export::parse("userName,email,primaryEmail\na,x@y,x@y\n", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("twice"), "{error}");
    }
}
