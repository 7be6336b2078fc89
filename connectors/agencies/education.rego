# Local policy of the schools: what it will not release, whatever the broker decided.
# Input and decision shapes: connectors/local_policy.py and docs/agency-guide.md.
package junction.local.education

import rego.v1

accepted_purposes := {
	"early_help_assessment",
	"child_in_need_assessment",
	"child_protection_enquiry",
	"youth_offending_assessment",
}

request contains refusal if {
	not input.purpose in accepted_purposes
	refusal := {
		"scope": "purpose",
		"code": "purpose-not-accepted",
		"reason": sprintf("the school does not share for %s", [input.purpose]),
	}
}

# A pupil living at a refuge is never located through the school.
persons contains refusal if {
	some person in input.persons
	"refuge" in person.flags
	refusal := {
		"ref": person.ref,
		"code": "refuge-protected",
		"reason": "the pupil's family is protected by a refuge",
	}
}

# Special educational needs are shared for assessments, not for youth justice.
fields contains withheld if {
	input.operation == "fetch"
	input.purpose == "youth_offending_assessment"
	some person in input.persons
	some field in person.fields
	field == "education.sen_status"
	withheld := {
		"ref": person.ref,
		"field": field,
		"code": "purpose-too-narrow",
		"reason": "SEN status is not shared for youth justice",
	}
}

# Arrays, not sets: every engine returns them the same way.
decision := {
	"request": [r | some r in request],
	"persons": [p | some p in persons],
	"fields": [f | some f in fields],
}
