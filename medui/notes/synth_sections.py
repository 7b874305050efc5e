"""Section writers for the synthetic notes: each writes one section's body with entities placed by construction.

Assertion conventions (shared with the hand-written dev set, see tests/data/notes_dev/README.md): a PROBLEM under a
negation cue is ``absent``; under an uncertainty cue ``possible``; in a conditional/instruction ("return if …
develops", "watch for") ``hypothetical``; belonging to a relative (or under Family history) ``family``; otherwise
``present``. ``historical`` is true for problems in PMH/PSH lists and for those with a past cue ("h/o", "history
of", "s/p", "prior", "in 2015") and false for absent/possible/hypothetical/family ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from medui.notes.synth_context import ALLERGENS, NORMAL_EXAM, PLAN, SOCIAL, exam_line, modifier
from medui.notes.synth_doc import Doc, Ent
from medui.notes.synth_vocab import Vocab


@dataclass
class Ctx:
    """Per-note facts reused across sections (patient pronoun, age, chief problems, medication rows)."""

    he: str
    his: str
    age: int
    sex: str
    chief: list[Ent] = field(default_factory=list)
    med_rows: list[dict[str, int]] = field(default_factory=list)


def _join(n: int, rng: random.Random, final: str | None = None) -> str:
    """Template for n slots joined as a list: "{}, {}, or {}" / "{}, {} and {}" / "{}/{}"."""
    if n == 1:
        return "{}"
    final = final or rng.choice((", or ", " or ", ", and ", " and ", ", "))
    return ", ".join(["{}"] * (n - 1)) + final + "{}"


def _absent_sentence(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    n = rng.choice((1, 1, 2, 3, 3, 4))
    ents = v.problems_distinct(n, assertion="absent", kind=rng.choice(("symptom", "symptom", None)))
    he = ctx.he.capitalize()
    pre = rng.choice((
        "Denies ", f"{he} denies ", "Pt denies ", "No ", "Negative for ", f"{he} denies any ", "Denies any recent ",
        "No evidence of ", f"{he} has not had any ", "Without ", "No associated ", "There is no ", "Denies having ",
        f"{he} does not report any ", "No history of ", "No complaints of ", "Pt has not noticed any ",
        "Specifically denies ", "He/she denies ", "Absence of ",
    ))
    if n == 1 and rng.random() < 0.25:  # post-negation: the cue follows the problem
        doc.say("{}" + rng.choice((" - denies. ", ": none. ", " was ruled out. ", " is not present. ", ": negative. ",
                                   " has resolved and is absent now. ", "? No. ", " is unlikely. ", " felt unlikely. ",
                                   " has been excluded. ")), *ents)
        return
    doc.say(pre + _join(n, rng) + rng.choice((". ", ". ", " today. ", " at this time. ", ".\n")), *ents)


def _possible_sentence(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    a, b = v.problems_distinct(2, assertion="possible")
    form = rng.randrange(9)
    if form == 0:
        doc.say(rng.choice(("Rule out ", "R/O ", "r/o ", "Will rule out ", "Need to r/o ")) + "{}. ", a)
    elif form == 1:
        doc.say(rng.choice(("Concern for ", "Concerning for ", "Suspicious for ", "Worrisome for ")) + "{}. ", a)
    elif form == 2:
        doc.say(rng.choice(("Likely ", "Probable ", "Possible ", "Suspected ", "Presumed ", "? ")) + "{}"
                + rng.choice((". ", ", will treat empirically. ", " - monitor. ")), a)
    elif form == 3:
        doc.say("{} vs {}" + rng.choice((". ", ", will evaluate. ", " - pending workup. ")), a, b)
    elif form == 4:
        doc.say("{}" + rng.choice((" is suspected. ", " cannot be excluded. ", " is possible. ", " not excluded. ",
                                   " is on the differential. ", " is a consideration. ")), a)
    elif form == 5:
        doc.say("Differential includes {} and {}. ", a, b)
    elif form == 6:
        doc.say("Cannot rule out {} at this time. ", a)
    elif form == 7:
        doc.say("Symptoms may represent early {}. ", a)
    else:
        doc.say(rng.choice(("Evaluate for ", "Workup for ", "Will assess for ")) + "{} with {}. ", a,
                v.test())


def _hypothetical_sentence(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    n = rng.choice((1, 1, 2, 3))
    ents = v.problems_distinct(n, assertion="hypothetical", kind=rng.choice(("symptom", None)))
    form = rng.randrange(6)
    who = rng.choice(("", f"{ctx.he} ", "the patient ", "pt "))
    if form == 0:
        doc.say(rng.choice(("Return to ED if ", "Return if ", "Return to the ED if ", "Call clinic if ",
                            "Seek medical attention if ")) + who + rng.choice(("develops ", "has ", "experiences "))
                + _join(n, rng, ", or ") + ". ", *ents)
    elif form == 1:
        doc.say(rng.choice(("Return precautions given for ", "Advised to return for ", "Watch for ",
                            "Monitor for ", "Call for any ", "Instructed to report any ")) + _join(n, rng) + ". ", *ents)
    elif form == 2:
        doc.say("If " + _join(n, rng, " or ") + rng.choice((" develops", " develop", " recurs", " worsens",
                                                            " occurs")) + ", return to the emergency department. ",
                *ents)
    elif form == 3:
        doc.say("Should " + (who or f"{ctx.he} ") + "develop " + _join(n, rng, " or ")
                + ", call 911. ", *ents)
    elif form == 4:
        doc.say("Discussed risk of {} with this medication. ", ents[0])
    else:
        doc.say("Return to clinic sooner if " + _join(n, rng, " or ") + " develops. ", *ents)


def _family_sentence(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    rel = v.relative()
    a, b = v.problems_distinct(2, assertion="family", kind="disease")
    form = rng.randrange(7)
    if form == 0:
        doc.say(f"{rel.capitalize()} had {{}}. ", a)
    elif form == 1:
        doc.say(f"{rel.capitalize()} with {{}} and {{}}. ", a, b)
    elif form == 2:
        doc.say(f"Family history of {{}} ({rel}). ", a)
    elif form == 3:
        doc.say(f"{rel.capitalize()} died of {{}} at age {rng.randint(45, 92)}. ", a)
    elif form == 4:
        doc.say(f"FHx significant for {{}} in {ctx.his} {rel}. ", a)
    elif form == 5:
        doc.say(f"{ctx.his.capitalize()} {rel} was diagnosed with {{}} at age {rng.randint(35, 80)}. ", a)
    else:
        doc.say(f"Strong family history of {{}}; {rel} also has {{}}. ", a, b)


def _historical_sentence(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    a = v.problem(historical=True)
    form = rng.randrange(6)
    if form == 0:
        lead = rng.choice(("H/o ", "h/o ", "Hx of ", "History of ", "PMH significant for ", "Remote history of "))
        if rng.random() < 0.5:  # "Hx of DM on metformin 500 mg PO BID": the problem stops before "on"
            ent, med = v.medication()
            dose = [v.dosage(med)] if rng.random() < 0.5 else []
            doc.say(lead + "{} on {}" + " {}" * len(dose) + ". ", a, ent, *dose)
        else:
            doc.say(lead + "{}. ", a)
    elif form == 1:
        doc.say(f"{ctx.he.capitalize()} had {{}} in {rng.randint(1995, 2023)}. ", a)
    elif form == 2:
        doc.say("S/p {} for {}" + f" in {rng.randint(2005, 2023)}. ", v.procedure(), a)
    elif form == 3:
        doc.say(f"Previously treated for {{}} {rng.randint(2, 15)} years ago. ", a)
    elif form == 4:
        doc.say("Prior {}, resolved. ", a)
    else:
        doc.say(f"{ctx.he.capitalize()} was diagnosed with {{}} as a child. ", a)


def _present_sentence(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    a, b = v.problems_distinct(2, kind=rng.choice(("symptom", "symptom", None)))
    he = ctx.he.capitalize()
    form = rng.randrange(9)
    if form == 0:
        doc.say(f"{he} reports {modifier(rng, 0.5)}{{}} for the past {rng.randint(2, 10)} days. ", a)
    elif form == 1:
        doc.say(rng.choice(("C/o ", "c/o ", "Complains of ", "Endorses ", "Reports ", "+ ")) + modifier(rng)
                + "{} and " + modifier(rng) + "{}. ", a, b)
    elif form == 2:
        doc.say("{}" + f" started {rng.choice(('yesterday', 'this morning', '3 days ago', 'last week'))}"
                " and has been getting worse. ", a)
    elif form == 3:
        doc.say("Associated with {}. ", a)
    elif form == 4:
        doc.say(f"{he} denies " + "{}" + rng.choice((", but reports ", "; however, endorses ", " but does have ",
                                                       ". Does report ")) + "{}. ",
                Ent(a.surface, "PROBLEM", "absent"), b)
    elif form == 5:
        doc.say(f"Noted to have {modifier(rng)}{{}} on arrival. ", a)
    elif form == 6:
        doc.say(f"Worsening {{}} over {rng.randint(2, 6)} weeks. ", a)
    elif form == 7:
        doc.say(f"{he} has had intermittent {{}}, worse with exertion. ", a)
    else:
        doc.say(f"Now with {modifier(rng, 0.5)}{{}}. ", a)


def _results_sentence(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    """A test named with its value or an unremarkable result (the value and reading are not part of the span)."""
    form = rng.randrange(6)
    if form == 0:
        doc.say("{}" + rng.choice((" unremarkable. ", " within normal limits. ", " normal. ", " pending. ",
                                   " stable. ", " reviewed. ")), v.test())
    elif form == 1:
        doc.say(rng.choice(("Will check {} and {}. ", "{} and {} ordered. ", "Trend {} and {}. ",
                            "Repeat {} and {} tomorrow. ")), v.test(), v.test())
    elif form == 2:
        doc.say("{}" + rng.choice((f" {rng.randint(18, 35) / 10}", f" {rng.randint(70, 140) / 10}",
                                   f" {rng.randint(4, 15) / 10}")) + rng.choice((", therapeutic. ", ", stable. ",
                                                                                 " today. ", ". ")), v.test("lab"))
    elif form == 3:
        doc.say("{}" + rng.choice((": normal sinus rhythm. ", " showed sinus rhythm, no acute changes. ",
                                   ": no acute cardiopulmonary process. ", " with EF 55-60%. ", " clear. ",
                                   " without acute findings. ")), v.test())
    elif form == 4:
        doc.say(rng.choice(("Obtain {} prior to discharge. ", "Check {} in 1 week. ", "Ordered {}. ")), v.test())
    else:
        doc.text(rng.choice(PLAN))


SENTENCES: dict[str, Callable[[Doc, Vocab, random.Random, Ctx], None]] = {
    "present": _present_sentence, "absent": _absent_sentence, "possible": _possible_sentence,
    "hypothetical": _hypothetical_sentence, "family": _family_sentence, "historical": _historical_sentence,
    "results": _results_sentence,
}


def hpi(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    hist = v.problems_distinct(rng.randint(1, 4), historical=True, kind="disease")
    ctx.chief = v.problems_distinct(rng.randint(1, 2))
    who = rng.choice((f"{ctx.age} yo {ctx.sex}", f"{ctx.age}-year-old {'man' if ctx.sex == 'M' else 'woman'}",
                      f"{ctx.age}{ctx.sex}", f"Pt is a {ctx.age} y/o {'male' if ctx.sex == 'M' else 'female'}"))
    doc.say(who + rng.choice((" with PMH of ", " with a history of ", " with h/o ", " w/ PMHx ")) + _join(len(hist), rng)
            + " who presents with " + _join(len(ctx.chief), rng, " and ") + ". ", *hist, *ctx.chief)
    kinds = ["present", "absent", "absent", "possible", "present", "historical", "absent"]
    for kind in rng.sample(kinds, rng.randint(2, len(kinds))):
        SENTENCES[kind](doc, v, rng, ctx)
    if rng.random() < 0.5:
        ent, med = v.medication()
        doc.say(f"Took {{}} {{}} at home {rng.choice(('without relief', 'with some relief', 'last night'))}. ",
                ent, v.dosage(med))
    doc.text("\n")


def pmh(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    items = v.problems_distinct(rng.randint(2, 8), historical=True, kind=rng.choice(("disease", "disease", None)))
    style = rng.randrange(4)
    if style == 0:
        doc.say(_join(len(items), rng, ", ") + "\n", *items)
        return
    for i, item in enumerate(items, 1):
        bullet = {1: "- ", 2: f"{i}. ", 3: f"{i}) "}.get(style, "\t")
        extra = rng.random()
        if extra < 0.15:
            doc.say(bullet + "{} s/p {}\n", item, v.procedure())
        elif extra < 0.3:
            doc.say(bullet + "{}" + f" (dx {rng.randint(1990, 2023)})\n", item)
        elif extra < 0.4:
            doc.say(bullet + "{}, on {}\n", item, v.medication()[0])
        else:
            doc.say(bullet + "{}\n", item)


def psh(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    for _ in range(rng.randint(1, 4)):
        doc.say(rng.choice(("- ", "", "s/p ", "* ")) + "{}" + rng.choice((f" ({rng.randint(1980, 2024)})", "",
                                                                          f" {rng.randint(1980, 2024)}")) + "\n",
                v.procedure())


def med_line(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx, prefix: str = "", tab: bool = False) -> None:
    """One medication row ("metformin 500 mg PO BID") with its attributes in a varied order and completeness."""
    ent, med = v.medication()
    parts = [("{}", v.dosage(med))]
    if rng.random() < 0.75:
        parts.append(("{}", v.route(med)))
    if rng.random() < 0.85:
        parts.append(("{}", v.frequency()))
    sep = "\t" if tab else " "
    template = prefix + "{}" + "".join(sep + p for p, _ in parts)
    if rng.random() < 0.15:
        template += rng.choice((" (home med)", " - continue", ", last dose this AM", " #30", " x 7 days"))
    placed = doc.say(template + "\n", ent, *(e for _, e in parts))
    row = {"medication": placed[0]}
    for index, (_, e) in zip(placed[1:], parts, strict=True):
        row[e.label.lower()] = index
    ctx.med_rows.append(row)


def medications(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    style = rng.randrange(5)
    tab = rng.random() < 0.15
    for i in range(1, rng.randint(2, 12)):
        prefix = {0: f"{i}. ", 1: "- ", 2: "", 3: "* ", 4: f"{i}) "}[style]
        med_line(doc, v, rng, ctx, prefix, tab)


def allergies(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    if rng.random() < 0.5:
        doc.text(rng.choice(("NKDA\n", "No known drug allergies\n", "NKA\n", "None known.\n")))
        return
    for i in range(rng.randint(1, 3)):
        doc.text(", " if i else "")
        if rng.random() < 0.3:  # a food or environmental allergen is neither a medication nor a problem
            doc.text(rng.choice(ALLERGENS))
        else:
            doc.ent(v.medication()[0])
        if rng.random() < 0.6:  # the reaction happened in the past: a present, historical problem
            reaction = rng.choice(("rash", "hives", "angioedema", "anaphylaxis", "nausea", "itching", "swelling"))
            doc.say(rng.choice((" ({})", " - {}", ": {}")), Ent(reaction, "PROBLEM", historical=True))
    doc.text("\n")


def family_history(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 3)):
            rel = v.relative()
            ents = v.problems_distinct(rng.randint(1, 2), assertion="family", kind="disease")
            doc.say(rng.choice((f"{rel.capitalize()}: ", f"- {rel.capitalize()} - ", f"{rel.capitalize()} with "))
                    + _join(len(ents), rng, ", ") + "\n", *ents)
    else:
        for _ in range(rng.randint(1, 2)):
            _family_sentence(doc, v, rng, ctx)
        doc.text("\n")


def social_history(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    for line in rng.sample(SOCIAL, rng.randint(1, 4)):
        doc.text(line)
    form = rng.randrange(8)  # most social histories name no diagnosis
    if form == 0:
        doc.say("{}" + rng.choice((", 1 ppd x 20 years. ", ", half a pack a day. ")),
                Ent(rng.choice(("Current smoker", "Tobacco abuse", "Tobacco use disorder")), "PROBLEM"))
    elif form == 1:
        doc.say(rng.choice(("Denies ", "No ")) + "{}. ", Ent(rng.choice(("alcohol abuse", "EtOH abuse", "tobacco use")),
                                                           "PROBLEM", "absent"))
    elif form == 2:
        doc.say("H/o {}" + f", sober since {rng.randint(2000, 2023)}. ",
                Ent(rng.choice(("alcohol dependence", "alcohol use disorder", "opioid use disorder")), "PROBLEM",
                    historical=True))
    doc.text("\n")


def ros(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    for system in rng.sample(("Constitutional", "HEENT", "CV", "Resp", "GI", "GU", "MSK", "Neuro", "Psych",
                              "Skin"), rng.randint(2, 6)):
        doc.text(f"{system}: ")
        if rng.random() < 0.3:
            doc.say(rng.choice(("(+) {}; ", "+ {}, ", "Positive for {}. ", "Endorses {}. ")), v.problem(kind="symptom"))
        ents = v.problems_distinct(rng.randint(1, 3), assertion="absent", kind="symptom")
        doc.say(rng.choice(("denies ", "no ", "(-) ", "negative for ", "Neg for ", "No ")) + _join(len(ents), rng)
                + "\n", *ents)
    if rng.random() < 0.5:
        doc.text("All other systems reviewed and negative.\n")


def physical_exam(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    vitals = [("blood pressure", f" {rng.randint(95, 185)}/{rng.randint(55, 105)}"),
              ("heart rate", f" {rng.randint(48, 130)}"), ("respiratory rate", f" {rng.randint(12, 28)}"),
              ("oxygen saturation", f" {rng.randint(86, 100)}%" + rng.choice((" on RA", " on 2L NC", ""))),
              ("temperature", rng.choice((f" {rng.randint(360, 395) / 10}", f" {rng.randint(970, 1030) / 10}°F",
                                          f" {rng.randint(360, 395) / 10} °C")))]
    doc.text(rng.choice(("Vitals: ", "VS: ", "")))
    for name, value in rng.sample(vitals, rng.randint(2, 5)):
        doc.say("{}" + value + rng.choice((", ", "  ", " | ")), v.named_test(name))
    doc.text("\n")
    systems = rng.sample(sorted(NORMAL_EXAM), rng.randint(3, 7))
    for system in systems:
        doc.text(exam_line(rng, system) + ("\n" if rng.random() < 0.6 else ""))
    if rng.random() < 0.6:
        doc.say("CV: RRR, no {}. ", Ent(rng.choice(("murmur", "murmurs", "heart murmur")), "PROBLEM", "absent"))
    if rng.random() < 0.3:
        doc.say("Lungs: " + rng.choice(("{} at the bases. ", "scattered {}. ")),
                Ent(rng.choice(("wheezing", "wheezes")), "PROBLEM"))
    elif rng.random() < 0.5:
        doc.say("Lungs: CTAB, no {}. ", Ent(rng.choice(("wheezing", "wheezes")), "PROBLEM", "absent"))
    edema = rng.choice(("edema", "pedal edema", "LE edema"))
    if rng.random() < 0.4:
        doc.say("Ext: no {}. ", Ent(edema, "PROBLEM", "absent"))
    elif rng.random() < 0.4:
        doc.say("Ext: " + rng.choice(("trace {}. ", "2+ pitting {} to the knees. ")), Ent(edema, "PROBLEM"))
    doc.text("\n")


def labs(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    values = {"hemoglobin": "9.8", "white blood cell count": "14.2", "sodium": "131", "potassium": "3.2",
              "creatinine": "1.8", "glucose": "245", "troponin": "<0.01", "B-type natriuretic peptide": "1250",
              "lactate": "2.4", "hemoglobin A1c": "8.9%", "international normalized ratio": "2.6",
              "thyroid stimulating hormone": "6.1", "magnesium": "1.6", "platelet count": "98", "D-dimer": "0.4"}
    chosen = rng.sample(sorted(values), rng.randint(2, 7))
    sep = rng.choice((", ", "\n", "; ", "\t"))
    for name in chosen:
        doc.say("{}" + rng.choice((" ", ": ", " - ")) + values[name] + sep, v.named_test(name))
    doc.text("\n")
    if rng.random() < 0.4:
        doc.say("{} " + rng.choice(("negative", "pending", "unremarkable", "within normal limits")) + ".\n", v.test("lab"))


def imaging(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    for _ in range(rng.randint(1, 2)):
        study = v.test("imaging")
        form = rng.randrange(4)
        if form == 0:
            doc.say("{}: " + rng.choice(("no evidence of ", "negative for ", "no ")) + "{}.\n", study,
                    v.problem(assertion="absent", kind="finding"))
        elif form == 1:
            doc.say("{}" + rng.choice((" showed ", ": ", " demonstrates ", " notable for ")) + "{}.\n", study,
                    v.problem(kind=rng.choice(("finding", "disease"))))
        elif form == 2:
            doc.say("{}" + rng.choice((": findings concerning for ", " - possible ", ": cannot exclude ")) + "{}.\n",
                    study, v.problem(assertion="possible"))
        else:
            doc.say("{} without {} or {}.\n", study, *v.problems_distinct(2, assertion="absent", kind="finding"))


def assessment_plan(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    numbered = rng.random() < 0.6
    for i in range(1, rng.randint(2, 5)):
        lead = ctx.chief[i - 1] if i - 1 < len(ctx.chief) else v.problem()
        lead_template = rng.choice((f"{i}. ", "# ", "- ")) + "{}" + rng.choice((": ", " - ", ". "))
        doc.say(lead_template if numbered else "{}: ", lead)
        for kind in rng.sample(("possible", "absent", "historical", "present"), rng.randint(0, 2)):
            SENTENCES[kind](doc, v, rng, ctx)
        plan = rng.randrange(7)
        if plan >= 4:  # management without a test, drug or procedure
            doc.text(" ".join(rng.sample(PLAN, rng.randint(1, 2))))
        elif plan == 0:
            doc.say("Obtain {} and {}. ", v.test(), v.test())
        elif plan == 1:
            ent, med = v.medication()
            placed = doc.say(rng.choice(("Start ", "Continue ", "Increase ", "Resume ", "Hold ")) + "{} {} {} {}. ",
                             ent, v.dosage(med), v.route(med), v.frequency())
            ctx.med_rows.append(dict(zip(("medication", "dosage", "route", "frequency"), placed, strict=True)))
        elif plan == 2:
            doc.say(rng.choice(("Plan for ", "Scheduled for ", "Consider ", "Refer for ")) + "{}. ", v.procedure())
        else:
            doc.say("Follow up {} in 2 weeks. ", v.test())
        doc.text("\n")
    _hypothetical_sentence(doc, v, rng, ctx)
    doc.text("\n")


def radiology_report(doc: Doc, v: Vocab, rng: random.Random, ctx: Ctx) -> None:
    """A report body: study, indication, findings (absent and present findings), then an impression list."""
    doc.say(rng.choice(("STUDY: ", "Study: ", "")) + "{}\n", v.test("imaging"))  # not "Exam:", a header
    doc.say("INDICATION: {}, evaluate for {}.\n", v.problem(), v.problem(assertion="possible"))
    doc.text("FINDINGS:\n")
    for _ in range(rng.randint(2, 5)):
        if rng.random() < 0.6:
            doc.say(rng.choice(("No {}. ", "No evidence of {}. ", "There is no {}. ", "Negative for {}. ")) + "\n",
                    v.problem(assertion="absent", kind=rng.choice(("finding", "disease"))))
        else:
            doc.say(rng.choice(("There is {}. ", "Small {}. ", "Findings of {}. ")) + "\n",
                    v.problem(kind=rng.choice(("finding", "disease"))))
    doc.header("Assessment/Plan", rng.choice(("IMPRESSION:", "Impression:", "IMPRESSION")), inline=False)
    for i, ent in enumerate(v.problems_distinct(rng.randint(1, 3), kind=rng.choice(("finding", "disease"))), 1):
        doc.say(f"{i}. " + rng.choice(("{}.", "Findings consistent with {}.", "{}, new since prior.")) + "\n", ent)


WRITERS: dict[str, Callable[[Doc, Vocab, random.Random, Ctx], None]] = {
    "HPI": hpi, "PMH": pmh, "PSH": psh, "Medications": medications, "Allergies": allergies,
    "Family history": family_history, "Social history": social_history, "ROS": ros, "Physical exam": physical_exam,
    "Labs/Results": labs, "Imaging": imaging, "Assessment/Plan": assessment_plan,
}
