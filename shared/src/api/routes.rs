//! The API's routes: the table `template.yaml` and the local router are checked against.
use crate::domain::Dialect;

/// One API operation, served by the Lambda function of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    CreateWebhook,
    GetWebhook,
    UpdateWebhook,
    DeleteWebhook,
    ListWebhooks,
    PublishEvent,
    ListDeliveries,
    EnableWebhook,
    RotateSecret,
    RedeliverEvent,
    TestWebhook,
    GetNotifications,
    UpdateNotifications,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 13] = [
        Operation::CreateWebhook,
        Operation::GetWebhook,
        Operation::UpdateWebhook,
        Operation::DeleteWebhook,
        Operation::ListWebhooks,
        Operation::PublishEvent,
        Operation::ListDeliveries,
        Operation::EnableWebhook,
        Operation::RotateSecret,
        Operation::RedeliverEvent,
        Operation::TestWebhook,
        Operation::GetNotifications,
        Operation::UpdateNotifications,
    ];

    /// The function's crate and binary name.
    pub fn function_name(self) -> &'static str {
        match self {
            Operation::CreateWebhook => "create-webhook",
            Operation::GetWebhook => "get-webhook",
            Operation::UpdateWebhook => "update-webhook",
            Operation::DeleteWebhook => "delete-webhook",
            Operation::ListWebhooks => "list-webhooks",
            Operation::PublishEvent => "publish-event",
            Operation::ListDeliveries => "list-deliveries",
            Operation::EnableWebhook => "enable-webhook",
            Operation::RotateSecret => "rotate-secret",
            Operation::RedeliverEvent => "redeliver-event",
            Operation::TestWebhook => "test-webhook",
            Operation::GetNotifications => "get-notifications",
            Operation::UpdateNotifications => "update-notifications",
        }
    }
}

/// A method and path template served by one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// With `{param}` segments, as in `template.yaml`.
    pub path: &'static str,
    pub operation: Operation,
    pub dialect: Dialect,
}

const fn route(method: &'static str, path: &'static str, operation: Operation, dialect: Dialect) -> Route {
    Route { method, path, operation, dialect }
}

/// Every route of the API. The first route of a path also answers its other methods, with 405.
pub const ROUTES: &[Route] = &[
    route("GET", "/basic/webhooks", Operation::ListWebhooks, Dialect::Ecomnow),
    route("POST", "/basic/webhooks", Operation::CreateWebhook, Dialect::Ecomnow),
    route("GET", "/basic/webhooks/{webhookId}", Operation::GetWebhook, Dialect::Ecomnow),
    route("PUT", "/basic/webhooks/{webhookId}", Operation::UpdateWebhook, Dialect::Ecomnow),
    route("DELETE", "/basic/webhooks/{webhookId}", Operation::DeleteWebhook, Dialect::Ecomnow),
    route("GET", "/api/webhooks/list", Operation::ListWebhooks, Dialect::Ventiapp),
    route("POST", "/api/webhooks/create", Operation::CreateWebhook, Dialect::Ventiapp),
    // A POST, as the Ventiapp document has it: their clients send it so.
    route("POST", "/api/webhooks/delete", Operation::DeleteWebhook, Dialect::Ventiapp),
    route("GET", "/basic/webhooks/{webhookId}/deliveries", Operation::ListDeliveries, Dialect::Ecomnow),
    route("POST", "/basic/webhooks/{webhookId}/enable", Operation::EnableWebhook, Dialect::Ecomnow),
    route("POST", "/basic/webhooks/{webhookId}/rotate-secret", Operation::RotateSecret, Dialect::Ecomnow),
    route("POST", "/basic/webhooks/{webhookId}/redeliver", Operation::RedeliverEvent, Dialect::Ecomnow),
    route("POST", "/basic/webhooks/{webhookId}/recover", Operation::RedeliverEvent, Dialect::Ecomnow),
    route("POST", "/basic/webhooks/{webhookId}/test", Operation::TestWebhook, Dialect::Ecomnow),
    route("GET", "/basic/notifications", Operation::GetNotifications, Dialect::Ecomnow),
    route("PUT", "/basic/notifications", Operation::UpdateNotifications, Dialect::Ecomnow),
    route("POST", "/events", Operation::PublishEvent, Dialect::Platform),
    route("POST", "/events/batch", Operation::PublishEvent, Dialect::Platform),
];

/// What a request's method and path resolve to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved<'a> {
    /// A route, with the value of its `{param}` segment if it has one.
    Route(&'static Route, Option<&'a str>),
    /// The path exists but not with this method; the methods it allows.
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

/// Matches a request against [`ROUTES`]. Methods are case-sensitive (RFC 9110, 9.1): `dELETE`
/// is not `DELETE` (a fuzzer's finding, `fuzz/regressions/route_and_id/`), and gets a 405.
pub fn resolve<'a>(method: &str, path: &'a str) -> Resolved<'a> {
    let mut allowed = Vec::new();
    for r in ROUTES {
        if let Some(param) = match_path(r.path, path) {
            if r.method == method {
                return Resolved::Route(r, param);
            }
            allowed.push(r.method);
        }
    }
    if allowed.is_empty() {
        Resolved::NotFound
    } else {
        Resolved::MethodNotAllowed(allowed)
    }
}

/// The function that answers a path's unsupported methods: its first route's.
pub fn fallback_for(path_template: &str) -> Option<Operation> {
    ROUTES.iter().find(|r| r.path == path_template).map(|r| r.operation)
}

fn match_path<'a>(template: &str, path: &'a str) -> Option<Option<&'a str>> {
    let mut t = template.split('/');
    let mut p = path.split('/');
    let mut param = None;
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(param),
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') && !ps.is_empty() => {
                param = Some(ps)
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_with_their_parameter() {
        match resolve("GET", "/basic/webhooks/42") {
            Resolved::Route(r, Some("42")) => assert_eq!(r.operation, Operation::GetWebhook),
            other => panic!("{other:?}"),
        }
        match resolve("POST", "/basic/webhooks") {
            Resolved::Route(r, None) => assert_eq!(r.operation, Operation::CreateWebhook),
            other => panic!("{other:?}"),
        }
        // Methods are case-sensitive.
        assert_eq!(resolve("post", "/basic/webhooks"), Resolved::MethodNotAllowed(vec!["GET", "POST"]));
    }

    #[test]
    fn wrong_methods_list_the_allowed_ones() {
        assert_eq!(
            resolve("PATCH", "/basic/webhooks/1"),
            Resolved::MethodNotAllowed(vec!["GET", "PUT", "DELETE"])
        );
        assert_eq!(resolve("DELETE", "/basic/webhooks"), Resolved::MethodNotAllowed(vec!["GET", "POST"]));
    }

    #[test]
    fn ventiapp_routes_resolve_to_their_operations() {
        for (method, path, op) in [
            ("GET", "/api/webhooks/list", Operation::ListWebhooks),
            ("POST", "/api/webhooks/create", Operation::CreateWebhook),
            ("POST", "/api/webhooks/delete", Operation::DeleteWebhook),
        ] {
            match resolve(method, path) {
                Resolved::Route(r, None) => {
                    assert_eq!((r.operation, r.dialect), (op, Dialect::Ventiapp))
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        assert_eq!(resolve("DELETE", "/api/webhooks/delete"), Resolved::MethodNotAllowed(vec!["POST"]));
        assert_eq!(resolve("GET", "/api/webhooks/create"), Resolved::MethodNotAllowed(vec!["POST"]));
        assert_eq!(resolve("GET", "/api/webhooks"), Resolved::NotFound);
    }

    #[test]
    fn unknown_paths_are_not_found() {
        assert_eq!(resolve("GET", "/basic/webhooks/1/x"), Resolved::NotFound);
        assert_eq!(resolve("GET", "/basic/webhooks/"), Resolved::NotFound);
        assert_eq!(resolve("GET", "/"), Resolved::NotFound);
    }
}
