//! What one page of the Contacts page loads from the store: a page of the user's
//! address book with each entry's CRM contact and account, or a page of CRM
//! contacts (browsed by name with a cursor, or searched: the search index's hits
//! kept to the guide's fields, then ordered by name and shown by offset).

use std::collections::HashMap;
use uuid::Uuid;

use super::contacts::{ListState, Tab, PAGE};
use crate::store::text::tokens;
use crate::store::{
    AddressBookEntry, BookCounts, ContactLink, CrmStore, Kind, Page, Record, SearchQuery, UserId,
};

/// Most CRM search hits considered (then shown in pages, by name).
const MAX_CRM_HITS: usize = 500;

/// One CRM contact as listed, with its account's name.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrmRow {
    pub id: Uuid,
    pub name: String,
    pub job_title: String,
    pub department: String,
    pub company: String,
    pub email: Option<String>,
    pub business_phone: String,
    pub account: Option<(Uuid, String)>,
}

/// One mail contact as listed: the entry, its CRM contact and that contact's account.
#[derive(Debug, Clone)]
pub struct MailRow {
    pub entry: AddressBookEntry,
    pub contact: Option<(Uuid, String)>,
    pub account: Option<(Uuid, String)>,
}

/// What one list request found.
pub enum Listing {
    Mail {
        counts: BookCounts,
        page: Page<MailRow>,
    },
    Crm {
        total: usize,
        rows: Vec<CrmRow>,
        /// Cursors (browsing) or offsets (search) of the neighbouring pages.
        prev: Option<String>,
        next: Option<String>,
        searched: bool,
    },
}

fn title_of(
    s: &dyn CrmStore,
    id: Uuid,
    cache: &mut HashMap<Uuid, String>,
) -> crate::store::Result<String> {
    if let Some(t) = cache.get(&id) {
        return Ok(t.clone());
    }
    let t = s.record(id)?.map(|r| r.title()).unwrap_or_default();
    cache.insert(id, t.clone());
    Ok(t)
}

fn crm_row(
    s: &dyn CrmStore,
    r: Record,
    cache: &mut HashMap<Uuid, String>,
) -> crate::store::Result<Option<CrmRow>> {
    let Record::Contact(c) = r else {
        return Ok(None);
    };
    let account = match c.account {
        Some(a) => Some((a.uuid(), title_of(s, a.uuid(), cache)?)),
        None => None,
    };
    Ok(Some(CrmRow {
        id: c.id.uuid(),
        name: c.full_name,
        job_title: c.job_title,
        department: c.department,
        company: c.company,
        email: c.emails.first().map(|e| e.to_string()),
        business_phone: c.business_phone,
        account,
    }))
}

/// Does every word start a word of the fields the guide searches for CRM contacts
/// (full name, title, department, business address; and company, SPEC section 6)?
/// E-mail, phone and account are not searched.
fn crm_fields_match(r: &Record, words: &[String]) -> bool {
    let Record::Contact(c) = r else { return false };
    let mut have = Vec::new();
    for f in [
        &c.full_name,
        &c.first_name,
        &c.last_name,
        &c.job_title,
        &c.department,
        &c.company,
        &c.address.street,
        &c.address.city,
        &c.address.state,
        &c.address.postal_code,
        &c.address.country,
    ] {
        have.extend(tokens(f));
    }
    words
        .iter()
        .all(|w| have.iter().any(|t| t.starts_with(w.as_str())))
}

/// Load what the list shows (blocking; run through `with_store`).
pub fn load_listing(
    s: &dyn CrmStore,
    owner: UserId,
    tab: Tab,
    st: &ListState,
) -> crate::store::Result<Listing> {
    let mut cache = HashMap::new();
    match tab {
        Tab::Mail => {
            let counts = s.address_book_counts(owner)?;
            let page = s.address_book_page(owner, st.view, &st.q, &st.page)?;
            let mut rows = Vec::with_capacity(page.items.len());
            for entry in page.items {
                let (contact, account) = match &entry.link {
                    ContactLink::Tracked { contact } => match s.record(contact.uuid())? {
                        Some(Record::Contact(c)) => {
                            let account = match c.account {
                                Some(a) => Some((a.uuid(), title_of(s, a.uuid(), &mut cache)?)),
                                None => None,
                            };
                            (Some((c.id.uuid(), c.full_name)), account)
                        }
                        _ => (None, None),
                    },
                    _ => (None, None),
                };
                rows.push(MailRow {
                    entry,
                    contact,
                    account,
                });
            }
            Ok(Listing::Mail {
                counts,
                page: Page {
                    items: rows,
                    prev: page.prev,
                    next: page.next,
                },
            })
        }
        Tab::Crm if st.q.is_empty() => {
            let total = s.count_records(Kind::Contact)?;
            let page = s.records_page(Kind::Contact, &st.page)?;
            let mut rows = Vec::new();
            for r in page.items {
                rows.extend(crm_row(s, r, &mut cache)?);
            }
            Ok(Listing::Crm {
                total,
                rows,
                prev: page.prev,
                next: page.next,
                searched: false,
            })
        }
        Tab::Crm => {
            let words = tokens(&st.q);
            let hits = s.search(&SearchQuery {
                text: st.q.clone(),
                kinds: vec![Kind::Contact],
                limit: MAX_CRM_HITS,
            })?;
            let mut found = Vec::new();
            for h in hits {
                if let Some(r) = s.record(h.id)? {
                    if crm_fields_match(&r, &words) {
                        found.push(r);
                    }
                }
            }
            found.sort_by_cached_key(|r| (crate::store::text::fold(&r.title()), r.id()));
            let total = found.len();
            let from = st.from.min(total);
            let mut rows = Vec::new();
            for r in found.into_iter().skip(from).take(PAGE) {
                rows.extend(crm_row(s, r, &mut cache)?);
            }
            Ok(Listing::Crm {
                total,
                prev: (from > 0).then(|| from.saturating_sub(PAGE).to_string()),
                next: (from + PAGE < total).then(|| (from + PAGE).to_string()),
                rows,
                searched: true,
            })
        }
    }
}
