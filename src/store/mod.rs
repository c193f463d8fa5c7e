//! The CRM store: records, activities, tracking records, indexes, import/export.
