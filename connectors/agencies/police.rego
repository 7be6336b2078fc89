# Local policy of the police force: what it will not release, whatever the broker decided.
# Input and decision shapes: connectors/local_policy.py and docs/agency-guide.md.
package junction.local.police

import rego.v1

accepted_purposes := {
	"early_help_assessment",
	"child_in_need_assessment",
	"child_protection_enquiry",
	"youth_offending_assessment",
}

# Requesting agencies with no information sharing agreement with the force.
refused_requesters := {"benefits"}

# Roles that may see incident counts outside a child protection enquiry.
incident_roles := {"social_worker", "team_manager"}

request contains refusal if {
	not input.purpose in accepted_purposes
	refusal := {
		"scope": "purpose",
		"code": "purpose-not-accepted",
		"reason": sprintf("the police do not share for %s", [input.purpose]),
	}
}

request contains refusal if {
	input.requester.agency in refused_requesters
	refusal := {
		"scope": "requester",
		"code": "no-sharing-agreement",
		"reason": sprintf("no sharing agreement with %s", [input.requester.agency]),
	}
}

# A live investigation is never disclosed, not even under break-glass.
persons contains refusal if {
	some person in input.persons
	"live_investigation" in person.flags
	refusal := {
		"ref": person.ref,
		"code": "live-investigation",
		"reason": "subject of a live investigation; contact the force's safeguarding hub",
	}
}

fields contains withheld if {
	input.operation == "fetch"
	input.purpose == "early_help_assessment"
	not input.requester.role in incident_roles
	not input.break_glass
	some person in input.persons
	some field in person.fields
	field == "police.domestic_abuse_incidents_12m"
	withheld := {
		"ref": person.ref,
		"field": field,
		"code": "role-not-permitted",
		"reason": "incident counts go to social workers only for early help",
	}
}

# Arrays, not sets: every engine returns them the same way.
decision := {
	"request": [r | some r in request],
	"persons": [p | some p in persons],
	"fields": [f | some f in fields],
}
