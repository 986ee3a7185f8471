//! Messaging.Narrowcast: audiences and demographic filters (with their
//! and/or/not operators) checked and turned into LINE's recipient, filter
//! and limit objects here; the outbox sends it with a retry key like every
//! send and then follows LINE's progress (`outbox::narrowcast`).

use serde_json::{Map, Value, json};
use tonic::Status;

use super::{
    send::{
        WAIT_FOR_LINE, body, enqueue, existing_channel, idempotency_key, line_id, messages,
        new_delivery, outcome, refuse_mentions,
    },
    status::Violations,
};
use crate::{outbound::delivery_to_proto, proto::v1 as pb, services::Services, store::SendKind};

/// Operators nest at most this deep: LINE states no bound, and a deeper
/// tree is a caller's mistake rather than a segment anyone means.
const MAX_DEPTH: usize = 10;
/// Recipient (or filter) objects in one request, all levels counted.
const MAX_OBJECTS: usize = 100;
/// LINE's age steps (`AgeDemographic`: `age_15` ... `age_70`).
const AGES: [i32; 12] = [15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70];
/// LINE's friendship periods in days (`SubscriptionPeriodDemographic`).
const PERIODS: [i32; 5] = [7, 30, 90, 180, 365];
/// LINE's area code prefixes and how many areas each has (Japan's
/// prefectures, Taiwan's, Thailand's and Indonesia's regions).
const AREAS: [(&str, u32); 4] = [("jp", 47), ("tw", 22), ("th", 8), ("id", 12)];

/// A walk over one operator tree, counting its objects.
struct Tree<'a> {
    violations: &'a mut Violations,
    objects: usize,
}

impl Tree<'_> {
    /// Counts an object at `depth`; `false` (reported once) past the bounds.
    fn enter(&mut self, field: &str, depth: usize) -> bool {
        self.objects += 1;
        if self.objects == MAX_OBJECTS + 1 {
            self.violations
                .add(field, format!("at most {MAX_OBJECTS} objects in all"));
        }
        if depth > MAX_DEPTH {
            self.violations
                .add(field, format!("operators nest at most {MAX_DEPTH} deep"));
            return false;
        }
        self.objects <= MAX_OBJECTS
    }

    fn recipient(
        &mut self,
        field: &str,
        recipient: &pb::NarrowcastRecipient,
        depth: usize,
    ) -> Value {
        use pb::narrowcast_recipient::Recipient as R;
        if !self.enter(field, depth) {
            return Value::Null;
        }
        match &recipient.recipient {
            None => {
                self.violations.add(
                    field,
                    "must set one of audience_group_id, redelivery_request_id, all_of, any_of, negated",
                );
                Value::Null
            }
            Some(R::AudienceGroupId(id)) => {
                if *id < 1 {
                    self.violations.add(
                        format!("{field}.audience_group_id"),
                        "must be an audience id (CreateAudience, ListAudiences)",
                    );
                }
                json!({ "type": "audience", "audienceGroupId": id })
            }
            Some(R::RedeliveryRequestId(id)) => {
                self.violations
                    .check(&format!("{field}.redelivery_request_id"), line_id(id));
                json!({ "type": "redelivery", "requestId": id })
            }
            Some(R::AllOf(list)) => self.recipients(field, "all_of", "and", list, depth),
            Some(R::AnyOf(list)) => self.recipients(field, "any_of", "or", list, depth),
            Some(R::Negated(inner)) => {
                let not = self.recipient(&format!("{field}.negated"), inner, depth + 1);
                json!({ "type": "operator", "not": not })
            }
        }
    }

    fn recipients(
        &mut self,
        field: &str,
        name: &str,
        operator: &str,
        list: &pb::NarrowcastRecipients,
        depth: usize,
    ) -> Value {
        let field = format!("{field}.{name}.recipients");
        if list.recipients.is_empty() {
            self.violations
                .add(&field, "must hold 1 or more recipients");
        }
        let operands: Vec<Value> = list
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| self.recipient(&format!("{field}[{i}]"), r, depth + 1))
            .collect();
        json!({ "type": "operator", operator: operands })
    }

    fn filter(&mut self, field: &str, filter: &pb::DemographicFilter, depth: usize) -> Value {
        use pb::demographic_filter::Filter as F;
        if !self.enter(field, depth) {
            return Value::Null;
        }
        match &filter.filter {
            None => {
                self.violations.add(
                    field,
                    "must set one of age, gender, area, app_type, subscription_period, all_of, any_of, negated",
                );
                Value::Null
            }
            Some(F::Age(range)) => {
                let field = format!("{field}.age");
                let bounds = self.range(
                    &field,
                    ("min_age", "below_age"),
                    (range.min_age, range.below_age),
                    &AGES,
                );
                steps("age", "age_", bounds)
            }
            Some(F::SubscriptionPeriod(range)) => {
                let field = format!("{field}.subscription_period");
                let bounds = self.range(
                    &field,
                    ("min_days", "below_days"),
                    (range.min_days, range.below_days),
                    &PERIODS,
                );
                steps("subscriptionPeriod", "day_", bounds)
            }
            Some(F::Gender(genders)) => {
                let names: Vec<Option<&str>> = genders
                    .genders
                    .iter()
                    .map(|g| match pb::Gender::try_from(*g) {
                        Ok(pb::Gender::Male) => Some("male"),
                        Ok(pb::Gender::Female) => Some("female"),
                        Ok(pb::Gender::Unspecified) | Err(_) => None,
                    })
                    .collect();
                let field = format!("{field}.gender.genders");
                self.one_of(&field, "gender", names, "GENDER_MALE or GENDER_FEMALE")
            }
            Some(F::AppType(apps)) => {
                let names: Vec<Option<&str>> = apps
                    .app_types
                    .iter()
                    .map(|a| match pb::AppType::try_from(*a) {
                        Ok(pb::AppType::Ios) => Some("ios"),
                        Ok(pb::AppType::Android) => Some("android"),
                        Ok(pb::AppType::Unspecified) | Err(_) => None,
                    })
                    .collect();
                let field = format!("{field}.app_type.app_types");
                self.one_of(&field, "appType", names, "APP_TYPE_IOS or APP_TYPE_ANDROID")
            }
            Some(F::Area(areas)) => {
                let names: Vec<Option<&str>> = areas
                    .areas
                    .iter()
                    .map(|a| is_area(a).then_some(a.as_str()))
                    .collect();
                let field = format!("{field}.area.areas");
                self.one_of(
                    &field,
                    "area",
                    names,
                    "one of LINE's area codes (jp_01-jp_47, tw_01-tw_22, th_01-th_08, id_01-id_12)",
                )
            }
            Some(F::AllOf(list)) => self.filters(field, "all_of", "and", list, depth),
            Some(F::AnyOf(list)) => self.filters(field, "any_of", "or", list, depth),
            Some(F::Negated(inner)) => {
                let not = self.filter(&format!("{field}.negated"), inner, depth + 1);
                json!({ "type": "operator", "not": not })
            }
        }
    }

    fn filters(
        &mut self,
        field: &str,
        name: &str,
        operator: &str,
        list: &pb::DemographicFilters,
        depth: usize,
    ) -> Value {
        let field = format!("{field}.{name}.filters");
        if list.filters.is_empty() {
            self.violations.add(&field, "must hold 1 or more filters");
        }
        let operands: Vec<Value> = list
            .filters
            .iter()
            .enumerate()
            .map(|(i, f)| self.filter(&format!("{field}[{i}]"), f, depth + 1))
            .collect();
        json!({ "type": "operator", operator: operands })
    }

    /// A `gte`/`lt` range over LINE's `steps`: each bound 0 (none) or a
    /// step, at least one given, the lower below the upper.
    fn range(
        &mut self,
        field: &str,
        (low_name, high_name): (&str, &str),
        (low, high): (i32, i32),
        steps: &[i32],
    ) -> (Option<i32>, Option<i32>) {
        let allowed = steps
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        for (name, value) in [(low_name, low), (high_name, high)] {
            if value != 0 && !steps.contains(&value) {
                self.violations.add(
                    format!("{field}.{name}"),
                    format!("must be 0 (no bound) or one of LINE's steps {allowed}; got {value}"),
                );
            }
        }
        if low == 0 && high == 0 {
            self.violations
                .add(field, format!("must give {low_name}, {high_name} or both"));
        }
        if low != 0 && high != 0 && low >= high {
            self.violations.add(
                format!("{field}.{high_name}"),
                format!("must be above {low_name} ({low}); got {high}"),
            );
        }
        ((low != 0).then_some(low), (high != 0).then_some(high))
    }

    /// LINE's `oneOf` list of names: 1 or more, each valid and once.
    fn one_of(&mut self, field: &str, kind: &str, names: Vec<Option<&str>>, valid: &str) -> Value {
        if names.is_empty() {
            self.violations.add(field, "must hold 1 or more values");
        }
        let mut seen = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match name {
                None => self
                    .violations
                    .add(format!("{field}[{i}]"), format!("must be {valid}")),
                Some(name) if seen.contains(name) => self
                    .violations
                    .add(format!("{field}[{i}]"), format!("{name} is listed twice")),
                Some(name) => seen.push(*name),
            }
        }
        json!({ "type": kind, "oneOf": seen })
    }
}

/// A range object of LINE's: `gte` and `lt` as `prefix` + step.
fn steps(kind: &str, prefix: &str, (low, high): (Option<i32>, Option<i32>)) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), json!(kind));
    if let Some(low) = low {
        object.insert("gte".into(), json!(format!("{prefix}{low}")));
    }
    if let Some(high) = high {
        object.insert("lt".into(), json!(format!("{prefix}{high}")));
    }
    Value::Object(object)
}

/// One of LINE's area codes: a country prefix, `_`, two digits in range.
fn is_area(code: &str) -> bool {
    let Some((country, number)) = code.split_once('_') else {
        return false;
    };
    number.len() == 2
        && number.bytes().all(|b| b.is_ascii_digit())
        && AREAS.iter().any(|(prefix, count)| {
            *prefix == country
                && number
                    .parse::<u32>()
                    .is_ok_and(|n| (1..=*count).contains(&n))
        })
}

/// LINE's `limit` object, or `None` when nothing limits the send.
fn limit(violations: &mut Violations, limit: Option<&pb::NarrowcastLimit>) -> Option<Value> {
    let pb::NarrowcastLimit {
        max,
        up_to_remaining_quota,
        forbid_partial_delivery,
    } = limit.cloned()?;
    if max < 0 {
        violations.add(
            "limit.max",
            format!("must be 0 (no maximum) or more; got {max}"),
        );
    }
    if forbid_partial_delivery && !up_to_remaining_quota {
        violations.add(
            "limit.forbid_partial_delivery",
            "LINE takes it only with up_to_remaining_quota",
        );
    }
    let mut object = Map::new();
    if max > 0 {
        object.insert("max".into(), json!(max));
    }
    if up_to_remaining_quota {
        object.insert("upToRemainingQuota".into(), json!(true));
    }
    if forbid_partial_delivery {
        object.insert("forbidPartialDelivery".into(), json!(true));
    }
    (!object.is_empty()).then_some(Value::Object(object))
}

pub async fn narrowcast(
    services: &Services,
    request: pb::NarrowcastRequest,
) -> Result<pb::NarrowcastResponse, Status> {
    let pb::NarrowcastRequest {
        channel_id,
        messages: list,
        recipient,
        filter,
        limit: wanted,
        notification_disabled,
        idempotency_key: key,
    } = request;
    let mut violations = Violations::new();
    let converted = messages(&mut violations, services, &channel_id, &list).await?;
    refuse_mentions(&mut violations, &list, "this is a narrowcast");
    if recipient.is_none() && filter.is_none() {
        violations.add(
            "recipient",
            "give recipient, filter or both (a send to every friend is Broadcast)",
        );
    }
    let mut tree = Tree {
        violations: &mut violations,
        objects: 0,
    };
    let recipient = recipient.map(|r| tree.recipient("recipient", &r, 1));
    let mut tree = Tree {
        violations: &mut violations,
        objects: 0,
    };
    let filter = filter.map(|f| tree.filter("filter", &f, 1));
    let limit = limit(&mut violations, wanted.as_ref());
    let key = idempotency_key(&mut violations, &key);
    violations.into_result()?;
    let channel_id = existing_channel(services, &channel_id).await?;
    let mut fields = Map::new();
    fields.insert("messages".into(), Value::Array(converted));
    if let Some(recipient) = recipient {
        fields.insert("recipient".into(), recipient);
    }
    if let Some(filter) = filter {
        fields.insert("filter".into(), json!({ "demographic": filter }));
    }
    if let Some(limit) = limit {
        fields.insert("limit".into(), limit);
    }
    let new = new_delivery(
        channel_id,
        SendKind::Narrowcast,
        body(fields, notification_disabled),
        key,
    );
    let record = enqueue(services, new, &list).await?;
    // Until LINE accepted it, not until it is done: that takes LINE a
    // while, and GetDelivery follows it.
    let record = services.outbox.wait_accepted(record, WAIT_FOR_LINE).await;
    let record = outcome(record)?;
    Ok(pb::NarrowcastResponse {
        delivery: Some(delivery_to_proto(&record)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_codes_are_lines() {
        for code in ["jp_01", "jp_47", "tw_22", "th_08", "id_12"] {
            assert!(is_area(code), "{code}");
        }
        for code in [
            "jp_00", "jp_48", "tw_23", "us_01", "jp_1", "jp01", "", "jp_0a",
        ] {
            assert!(!is_area(code), "{code}");
        }
    }

    #[test]
    fn operators_become_lines_objects_and_bad_leaves_are_named() {
        use pb::demographic_filter::Filter as F;
        let mut violations = Violations::new();
        let mut tree = Tree {
            violations: &mut violations,
            objects: 0,
        };
        let filter = pb::DemographicFilter {
            filter: Some(F::AllOf(pb::DemographicFilters {
                filters: vec![
                    pb::DemographicFilter {
                        filter: Some(F::Age(pb::AgeRange {
                            min_age: 20,
                            below_age: 0,
                        })),
                    },
                    pb::DemographicFilter {
                        filter: Some(F::Negated(Box::new(pb::DemographicFilter {
                            filter: Some(F::Gender(pb::GenderFilter {
                                genders: vec![pb::Gender::Male as i32],
                            })),
                        }))),
                    },
                ],
            })),
        };
        assert_eq!(
            tree.filter("filter", &filter, 1),
            json!({"type": "operator", "and": [
                {"type": "age", "gte": "age_20"},
                {"type": "operator", "not": {"type": "gender", "oneOf": ["male"]}},
            ]})
        );
        assert_eq!(violations.count(), 0);

        let mut violations = Violations::new();
        let mut tree = Tree {
            violations: &mut violations,
            objects: 0,
        };
        let bad = pb::DemographicFilter {
            filter: Some(F::AnyOf(pb::DemographicFilters {
                filters: vec![pb::DemographicFilter {
                    filter: Some(F::Age(pb::AgeRange {
                        min_age: 30,
                        below_age: 22,
                    })),
                }],
            })),
        };
        tree.filter("filter", &bad, 1);
        let message = violations.into_result().unwrap_err().message().to_owned();
        assert!(
            message.contains("filter.any_of.filters[0].age.below_age"),
            "{message}"
        );
    }
}
