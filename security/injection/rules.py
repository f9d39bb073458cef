"""The rules corpus of :class:`security.injection.detection.PatternDetector`: named regex rules.

Rule names (:data:`RULE_NAMES`) are stable: dashboards and policies refer to
them. Patterns of the default ``lower`` view are written in lower case, without
``re.IGNORECASE`` (three times slower). Benign look-alikes ("ignore the
previous email", "act as soon as possible") are part of the contract: the tests
hold a corpus of them that must stay silent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from security.injection.fencing import FENCE_TAG_LOOKALIKE

View = Literal["lower", "cased", "raw"]
"""What a rule's patterns read: the normalised view lower-cased (``lower``, the default:
write patterns in lower case, without ``re.IGNORECASE``, which is three times slower),
the normalised view as cased (``cased``: ``SYSTEM:`` but not ``System:``), or the text as
written (``raw``: rules about the invisible characters normalisation drops)."""


@dataclass(frozen=True, slots=True)
class PatternRule:
    """A named rule: a finding wherever any of its patterns matches.

    Several rules may share a name (one per view); their matches are reported
    as one rule's.
    """

    name: str
    patterns: tuple[re.Pattern[str], ...]
    view: View = "lower"


def _rx(*patterns: str, flags: int = 0) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern, flags) for pattern in patterns)


_IGNORE_VERB = (
    r"(?:ignore|disregard|forget|skip|override|overrule|bypass|neglect|discard|abandon"
    r"|set\s+aside|throw\s+out|pay\s+no\s+attention\s+to|stop\s+following"
    r"|do\s+not\s+(?:follow|obey)|don'?t\s+(?:follow|obey))"
)


_IGNORE_FILL = (
    r"(?:the|of|these|those|my|its|their|his|her|and|or|other|that|following|you|were|have"
    r"|been|had|got)"
)


_IGNORE_STRONG = (
    r"(?:all|any|every|previous|previously|prior|above|earlier|preceding|foregoing|original"
    r"|initial|old|former|your|system|developer|safety|given|existing|current)"
)


_IGNORE_OBJECT = (
    r"(?:instructions?|prompts?|directions?|directives?|rules|guidelines|guidance|commands?"
    r"|orders|context|constraints|restrictions|programming|training|polic(?:y|ies)"
    r"|system\s+messages?|guardrails|safeguards)"
)


_IGNORE_INSTRUCTIONS = _rx(
    # English: a verb, a qualifier that points at the prompt, an instruction noun.
    rf"\b{_IGNORE_VERB}\s+(?:{_IGNORE_FILL}\s+){{0,3}}{_IGNORE_STRONG}\s+"
    rf"(?:(?:{_IGNORE_FILL}|{_IGNORE_STRONG})\s+){{0,3}}{_IGNORE_OBJECT}\b",
    rf"\b{_IGNORE_VERB}\s+(?:{_IGNORE_FILL}\s+){{0,3}}{_IGNORE_OBJECT}\s+(?:above|given\s+"
    r"(?:above|earlier|before)|you\s+(?:were|have\s+been)\s+given|from\s+(?:before|earlier"
    r"|the\s+system|your\s+developers?))\b",
    r"\b(?:ignore|disregard|forget)\s+(?:everything|anything|all(?:\s+of\s+it)?|whatever)\s+"
    r"(?:(?:that\s+)?you\s+(?:were|have\s+been|'ve\s+been|had\s+been)\s+"
    r"(?:told|given|instructed|taught|programmed)"
    r"|(?:written\s+|said\s+|stated\s+)?(?:above|before\s+this|previously|so\s+far"
    r"|up\s+to\s+(?:now|this\s+point)))",
    r"\b(?:ignore|disregard)\s+(?:all\s+of\s+|everything\s+)?the\s+above"
    r"(?=\s*(?:[,.;:!]|and\b|$))",
    # French, Spanish, German, Italian, Portuguese, Dutch (accents are folded away).
    r"\b(?:ignore[rsz]?|oublie[rsz]?|neglige[rsz]?)\s+(?:toutes\s+|tous\s+)?(?:les|tes|vos|ces)\s+"
    r"(?:instructions|consignes|directives|regles|ordres)\s+"
    r"(?:precedentes|anterieures|ci-dessus|initiales|d'origine|du\s+systeme)",
    r"\b(?:ignore[rsz]?|oublie[rsz]?|neglige[rsz]?)\s+(?:toutes|tous)\s+(?:les|tes|vos)\s+"
    r"(?:instructions|consignes|directives|regles|ordres)\b",
    r"\b(?:ignora[rn]?|ignore[ns]?|olvida[rn]?|olvide[ns]?|omite[n]?|omitir|descarta[rn]?)\s+"
    r"(?:todas\s+)?(?:las|tus|sus)\s+(?:instrucciones|indicaciones|ordenes|reglas|directrices)\s+"
    r"(?:anteriores|previas|iniciales|de\s+arriba|del\s+sistema)",
    r"\b(?:ignora[rn]?|ignore[ns]?|olvida[rn]?|olvide[ns]?|omite[n]?|omitir|descarta[rn]?)\s+"
    r"todas\s+(?:las|tus|sus)\s+(?:instrucciones|indicaciones|ordenes|reglas|directrices)\b",
    r"\b(?:ignoriere|ignorieren|ignoriert|ignorier|vergiss|vergessen|missachte|missachten)\s+"
    r"(?:sie\s+)?(?:alle|samtliche)\s+(?:(?:deine|ihre|die|bisherigen|vorherigen|obigen|vorigen"
    r"|fruheren|vorangegangenen|ursprunglichen)\s+)*"
    r"(?:anweisungen|instruktionen|befehle|vorgaben|regeln)\b",
    r"\b(?:ignoriere|ignorieren|ignoriert|ignorier|vergiss|vergessen|missachte|missachten)\s+"
    r"(?:sie\s+)?(?:(?:die|deine|ihre)\s+)?(?:vorherigen|bisherigen|obigen|vorigen|fruheren"
    r"|vorangegangenen|ursprunglichen)\s+(?:anweisungen|instruktionen|befehle|vorgaben|regeln)\b",
    r"\b(?:ignora|ignorate|dimentica|dimenticate)\s+(?:tutte\s+)?le\s+"
    r"(?:istruzioni|indicazioni|regole)\s+(?:precedenti|di\s+sopra|iniziali|del\s+sistema)",
    r"\b(?:ignore|ignora|esqueca|esquecam|desconsidere)\s+(?:todas\s+)?as\s+"
    r"(?:instrucoes|orientacoes|regras)\s+(?:anteriores|previas|acima|iniciais|do\s+sistema)",
    r"\b(?:negeer|vergeet)\s+(?:alle\s+)?(?:de\s+|je\s+)?"
    r"(?:vorige|eerdere|voorgaande|bovenstaande)\s+(?:instructies|opdrachten|regels)\b",
)


_ROLE_NOUN = (
    r"(?:ai|assistant|chatbot|bot|model|llm|persona|character|hacker|pirate|dan"
    r"|admin(?:istrator)?|root|superuser|linux\s+terminal|terminal|shell|interpreter|console"
    r"|unrestricted|unfiltered|uncensored|jailbroken|evil\s+\w+)"
)


_DIRECTED = (
    r"(?:^|(?<=[.!?:;\n])[ \t]*|\b(?:please|now|you\s+(?:will|must|should|shall|are\s+to|need\s+to)"
    r"|i\s+want\s+you\s+to|i\s+need\s+you\s+to|you'?re\s+going\s+to|from\s+now\s+on,?)\s+)"
)
"""Where an imperative addressed to the model starts: a sentence start, or "please", "I want
you to"... ("Sarah will act as a liaison" is not addressed to the model)."""


_ROLE_OVERRIDE = _rx(
    r"\byou\s+are\s+now\s+(?:(?:a|an|the|my|in|no\s+longer|not)\s+)?"
    r"(?:(?:new|different|evil|unrestricted|unfiltered|uncensored|jailbroken|rogue|malicious"
    r"|free|real|fully|completely|an?)\s+)*"
    rf"(?:{_ROLE_NOUN}|developer\s+mode|god\s+mode|\w+\s+mode\b|bound|restricted|limited"
    r"|required\s+to|going\s+to\s+(?:act|pretend|be|play|respond|answer|ignore)"
    r"|called|named|acting\s+as|operating\s+(?:as|in|without))\b",
    rf"{_DIRECTED}act\s+(?:as|like)\s+(?:if\s+you\s+(?:are|were|have|had|can|could)\b"
    rf"|though\s+you\b|(?:an?|the|my)\s+(?:\w+\s+){{0,2}}?{_ROLE_NOUN}\b|dan\b)",
    rf"{_DIRECTED}pretend\s+(?:that\s+)?(?:you\s+are|you'?re|to\s+be|you\s+have\s+no)\b",
    r"\bfrom\s+now\s+on\s*,?\s+(?:you\s+(?:are|will\s+be|shall\s+be|must\s+be)\s+"
    rf"(?:an?\s+|the\s+)?(?:\w+\s+){{0,2}}?(?:{_ROLE_NOUN}|free\s+of|no\s+longer)\b"
    r"|you\s+(?:will|must|shall|should)\s+(?:only\s+)?(?:respond|answer|reply|act|speak|talk"
    r"|behave|obey|follow\s+(?:my|these|only))\b"
    r"|(?:respond|answer|reply|act|speak|talk|behave)\s+(?:only\s+)?(?:as|like|in)\b)",
    r"\byour\s+(?:new|real|true|actual)\s+(?:persona|identity|instructions|directive"
    r"|objective|purpose|programming)\s+(?:is|are|will\s+be)\b",
    r"\b(?:roleplay|role-play)\s+as\s+(?:an?\s+)?(?:\w+\s+){0,2}?"
    r"(?:ai|assistant|model|chatbot|hacker|unrestricted|unfiltered|dan)\b",
)


_JAILBREAK = _rx(
    r"\b(?:dan\s+mode|do\s+anything\s+now)\b",
    r"\b(?:developer|dev|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos)"
    r"\s+mode\s+(?:is\s+)?(?:enabled|activated|engaged|on(?=\s*(?:[.!:;,]|$)))",
    r"\b(?:enable|activate|enter|switch\s+to|turn\s+on)\s+(?:the\s+)?"
    r"(?:developer|dev|god|jailbreak|unrestricted|unfiltered|uncensored|dan|evil|sudo)\s+mode\b",
    r"\b(?:without|with\s+no|free\s+(?:of|from))\s+(?:any\s+)?(?:ethical|moral|content|safety)\s+"
    r"(?:restrictions|guidelines|filters|limitations|constraints|considerations|boundaries)\b",
    r"\b(?:bypass|circumvent|evade|jailbreak)\s+(?:your\s+|all\s+|the\s+|any\s+)*"
    r"(?:safety|content|ethical|moderation)\s+(?:filters?|guidelines|polic(?:y|ies)"
    r"|restrictions|protocols|measures|checks|rules|settings)\b",
    r"\b(?:disable|deactivate|turn\s+off|remove|ignore)\s+your\s+(?:safety|content|ethical"
    r"|moderation)\s+(?:filters?|guidelines|polic(?:y|ies)|restrictions|protocols|rules)\b",
    r"\b(?:anthropic|openai)(?:'s)?\s+(?:content\s+|usage\s+)?polic(?:y|ies)\s+"
    r"(?:do(?:es)?\s+not|don'?t|no\s+longer)\s+apply\b",
    r"\bno\s+longer\s+(?:bound|restricted|limited)\s+by\s+(?:any\s+)?"
    r"(?:rules|guidelines|polic(?:y|ies)|restrictions|your)\b",
)


_LEAK_VERB = (
    r"(?:reveal|print|repeat|output|disclose|leak|dump|recite|regurgitate|spell\s+out"
    r"|write\s+out|echo)"
)


_SYSTEM_PROMPT_LEAK = _rx(
    rf"\b(?:{_LEAK_VERB}|show|display|share|tell\s+me|give\s+me|send\s+me|paste|copy|return"
    r"|translate|summari[sz]e|what\s+(?:is|are|was|were))\s+(?:me\s+)?"
    r"(?:(?:all|the|your|of|exact|full|entire|complete|verbatim|original|initial|hidden|secret"
    r"|internal|confidential|first|above|previous|developer|real)\s+)*"
    r"(?:system\s+(?:prompt|message|instructions?)|(?:pre-?)?prompt\s+(?:above|you\s+were\s+given)"
    r"|initial\s+(?:prompt|instructions)|hidden\s+(?:prompt|instructions)"
    r"|secret\s+(?:prompt|instructions))\b",
    rf"\b{_LEAK_VERB}\s+(?:(?:all|the|exact|full|complete|verbatim|back)\s+)*your\s+"
    r"(?:(?:original|initial|hidden|secret|internal|full|exact|complete|real|system|first)\s+)*"
    r"(?:prompt|instructions|rules|guidelines|directives|programming|configuration)\b",
    r"\b(?:what|tell\s+me|show\s+me|give\s+me|share)\s+(?:(?:is|are|were|was|all)\s+)?your\s+"
    r"(?:(?:original|initial|hidden|secret|internal|full|exact|complete|real|system|first)\s+)+"
    r"(?:prompt|instructions|rules|guidelines|directives)\b",
    r"\b(?:what|tell\s+me|show\s+me)\s+(?:(?:is|was)\s+)?your\s+prompt\b",
    r"\brepeat\s+(?:(?:all|the|every|each)\s+)*(?:words|text|lines|sentences|everything|content"
    r"|messages?)\s+(?:written\s+|that\s+(?:appear|came)\s+)?(?:above|before\s+this|preceding"
    r"|prior\s+to\s+this|so\s+far)\b",
    r"\b(?:print|output|show|display|write)\s+(?:everything|all\s+(?:the\s+)?text)\s+"
    r"(?:above|before\s+this)\b",
)


_OUR_SECTIONS = (
    r"(?:task|output|your\s+answer|input\s+from\b.*|reviewer\s+feedback\b.*"
    r"|your\s+previous\s+answer\b.*)"
)
"""The headings :mod:`prompting.render` writes: a line forging one could pass for a section."""


_FAKE_SECTION = _rx(
    rf"^[ \t]{{0,3}}#{{1,6}}[ \t]*{_OUR_SECTIONS}[ \t]*:?[ \t]*$",
    r"^[ \t]{0,3}#{1,6}[ \t]*(?:system|system\s+(?:prompt|message|instructions?|override)"
    r"|(?:new\s+|updated\s+)?instructions?|developer(?:\s+(?:message|instructions?))?|assistant"
    r"|user|human|admin(?:istrator)?(?:\s+(?:message|instructions?|override))?)[ \t]*:?[ \t]*$",
    r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|end_of_text"
    r"|start_header_id|end_header_id|eot_id|eom_id)\|>",
    r"\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>",
    r"^[ \t]*(?:human|assistant)[ \t]*:",
    r"^[ \t]*\[(?:system|admin|developer)\]",
    r"<\s*/?\s*(?:system|system_prompt|system-prompt|instructions|developer_message)\s*>",
    flags=re.MULTILINE,
)


_FAKE_SECTION_CASED = _rx(r"^[ \t]*(?:SYSTEM|ADMIN|DEVELOPER)[ \t]*:", flags=re.MULTILINE)
"""Upper case only: ``System: Ubuntu 22.04`` in a bug report is not a forged turn."""


_JAILBREAK_CASED = _rx(r"\bDAN\s*\(")
"""``DAN (Do Anything Now)``; ``Dan (our PM)`` is a person."""


_FENCE_ESCAPE = (FENCE_TAG_LOOKALIKE,)


_SENSITIVE = (
    r"(?:(?:the|this|our|your|my|all|any|entire|full|whole|complete|previous|above|current"
    r"|chat|conversation|user'?s?|customer'?s?|private|personal|sensitive|confidential"
    r"|stored|saved)\s+)*"
    r"(?:conversation|chat(?:\s+(?:log|history))?|history|transcript|system\s+prompt|prompt"
    r"|secrets?|api[\s_-]?keys?|keys|credentials|passwords?|tokens?|cookies?|session\s+\w+"
    r"|context|memory|pii|everything|(?:(?:all|user'?s?|customer'?s?|private|personal|sensitive"
    r"|confidential|chat|conversation|previous)\s+)(?:data|information|details|messages|emails"
    r"|files|documents|records))"
)


_NOT_A_MODIFIER = (
    r"(?!\s+(?:reset|policy|policies|manager|strength|requirements?|field|form|link|change"
    r"|expiry|rotation|hint|template|format))"
)
""""the password reset link" and "the token format" are not the password or the token."""


_DESTINATION = (
    r"(?:https?://|www\.|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|(?:this|that|the\s+following|my|our|an?)\s+(?:url|link|endpoint|webhook|server"
    r"|website|site|domain))"
)


_EXFILTRATION = _rx(
    r"\b(?:send|post|upload|forward|transmit|submit|exfiltrate|leak|email|e-mail|report|deliver"
    rf"|copy|dump|share|relay|export|pipe)\s+(?:(?:it|them|this|that)\s+)?{_SENSITIVE}\b"
    rf"{_NOT_A_MODIFIER}"
    rf"[^\n]{{0,80}}?\b(?:to|at|into|via|on)\s+{_DESTINATION}",
    rf"\b(?:include|append|add|embed|encode|put|insert)\s+{_SENSITIVE}\b{_NOT_A_MODIFIER}"
    r"[^\n]{0,60}?"
    r"\b(?:in|into|to|as)\s+(?:the\s+|a\s+|an\s+)?(?:url|link|query\s+(?:string|parameter)"
    r"|image(?:\s+url)?|markdown\s+image|request|webhook)\b",
    r"!\[[^\]\n]{0,100}\]\(\s*https?://[^\s)]{1,300}[?&][\w.-]{1,40}=[^\s)]{0,200}"
    r"(?:\{|\[|<|%7b|\$)",
    r"\b(?:visit|open|fetch|navigate\s+to|load|browse\s+to|request|curl)\s+https?://\S{1,300}"
    r"[?&][\w.-]{1,40}=\s*(?:\{|\[|<|%7b|\$)",
)


_TOOL_HIJACK = _rx(
    r"\b(?:call|invoke|execute|run|trigger|use|fire)\s+(?:the\s+|a\s+|this\s+)?"
    r"(?:`[^`\n]{1,60}`|[a-z]\w*_\w+|\w+\(\))\s+(?:tool|plugin|action)\b",
    r"\b(?:invoke|trigger)\s+(?:the\s+|a\s+|this\s+)?(?:`[^`\n]{1,60}`|[a-z]\w*_\w+|\w+\(\))\s+"
    r"function\b",
    r"\b(?:call|invoke|trigger|execute|use)\s+(?:the\s+|a\s+|your\s+|any\s+)?(?:tool|function)\s+"
    r"(?:named|called)\b",
    r"<\s*/?\s*(?:function_calls|invoke|tool_use|tool_call|tool_calls|tool_result"
    r"|function_results|antml:\w+)\b",
    r"\"type\"\s*:\s*\"tool_use\"|\"(?:function_call|tool_calls)\"\s*:",
    r"\b(?:change|switch|alter|set|modify)\s+(?:your|the)\s+(?:output|response|answer|reply)"
    r"(?:'s)?\s+(?:format|language|style|schema|structure)\s+to\b",
    r"\b(?:respond|reply|answer|output)\s+(?:only\s+with|with\s+only|with\s+exactly"
    r"|exclusively\s+with)\s+(?:the\s+following|this|the\s+(?:word|string|phrase|json)|[\"'{])",
    r"\b(?:say|print|output|write|respond\s+with|reply\s+with|answer\s+with)\s+(?:only\s+)?"
    r"(?:the\s+(?:words?|phrase|sentence)\s+)?[\"'`]?i\s+have\s+been\s+pwned",
    r"\byour\s+(?:only\s+)?(?:final\s+)?(?:output|response|answer|reply)\s+(?:must|should|shall"
    r"|will)\s+(?:only\s+)?(?:be|contain|say|start\s+with|consist\s+of)\s+(?:exactly|only|just"
    r"|the\s+(?:word|phrase|following))\b",
)


_VERDICT_MANIPULATION = _rx(
    r"\b(?:give|assign|award)\s+(?:this|it|me|us|(?:the|this|my|our)\s+\w+)\s+(?:a\s+|an\s+)?"
    r"(?:perfect|full|maximum|top|passing|10(?:\s*/\s*10)?|ten)\b"
    r"(?:\s+(?:score|rating|grade|marks?|points?|out\s+of\s+10))?",
    r"\b(?:rate|score|grade)\s+(?:this|it|the\s+\w+)\s+(?:as\s+|a\s+)?"
    r"(?:10|ten|perfect|passing|passed|approved)\b",
    r"\b(?:mark|set|flag|report|treat|consider)\s+(?:this|it|the\s+\w+)\s+as\s+"
    r"(?:passed|passing|approved|accepted|compliant|safe|verified)\b",
    r"\"score\"\s*:\s*(?:9|10)\b[^\n}]{0,80}\"passed\"\s*:\s*true\b",
    r"\b(?:the\s+)?(?:reviewer|grader|evaluator|judge|scorer|critic)s?\s+(?:must|should|will"
    r"|shall|has\s+to|is\s+required\s+to)\s+(?:approve|accept|pass|give|score|rate|mark)\b",
    r"\b(?:approve|accept|pass)\s+(?:this|it)\s+(?:regardless|no\s+matter"
    r"|without\s+(?:review|reviewing|checking|reading|question))\b",
)


_AI = (
    r"(?:ai|a\.i\.|llms?|large\s+language\s+models?|language\s+models?"
    r"|ai\s+(?:assistants?|agents?|models?|systems?|reviewers?)|assistants?|chatbots?|gpt"
    r"|chatgpt|bots?|agents?|automated\s+(?:systems?|reviewers?|agents?|tools?|assistants?))"
)


_NOT_A_PERSON_WHO_WORKS_IN_AI = (
    r"(?!\s+(?:researchers?|engineers?|enthusiasts?|developers?|practitioners?|startups?|company"
    r"|companies|teams?|students?|scientists?|professionals?|experts?|conference|summit|lab"
    r"|group|community|policy|ethics))"
)


_ADDRESSED_TO_MODEL = _rx(
    r"\b(?:note|message|instructions?|attention|memo|directive|important|p\.?s\.?)\s+"
    rf"(?:to|for)\s+(?:the\s+|any\s+|all\s+)?{_AI}\b{_NOT_A_PERSON_WHO_WORKS_IN_AI}",
    r"\bif\s+you\s+are\s+(?:an?\s+)?(?:ai|a\.i\.|llm|large\s+language\s+model|language\s+model"
    r"|ai\s+(?:assistant|agent|model|system)|chatbot|gpt|automated\s+(?:system|agent|assistant"
    rf"|reviewer)|bot)\b{_NOT_A_PERSON_WHO_WORKS_IN_AI}",
    r"\b(?:dear|hey|hello|hi|attention|attn)\s*,?\s+(?:ai|llm|assistant|chatbot|gpt|chatgpt"
    r"|language\s+model|ai\s+(?:assistant|agent|model))\s*[,:!]",
    r"\b(?:ai|llms?|ai\s+assistants?|language\s+models?|assistants?|chatbots?|ai\s+agents?)\s+"
    r"(?:reading|processing|summari[sz]ing|reviewing|analy[sz]ing|scanning)\s+(?:this|these"
    r"|the\s+following)\b",
)


_OBFUSCATION = _rx(
    r"[\U000E0000-\U000E007F]+",
    r"[\u202A-\u202E\u2066-\u2069]+",
    r"[A-Za-z][\u200B-\u200D\u2060\uFEFF\u00AD\u180E]+(?=[A-Za-z])",
    r"\b(?=[^\W\d_]*[A-Za-z])(?=[^\W\d_]*[\u0370-\u03FF\u0400-\u04FF])[^\W\d_]{4,}\b",
    flags=0,
)
"""Hidden text (tag characters), direction overrides, invisible characters inside a Latin
word, and words mixing Latin with Cyrillic or Greek letters (homoglyph spelling)."""


DEFAULT_RULES: tuple[PatternRule, ...] = (
    PatternRule("ignore-instructions", _IGNORE_INSTRUCTIONS),
    PatternRule("role-override", _ROLE_OVERRIDE),
    PatternRule("jailbreak", _JAILBREAK),
    PatternRule("jailbreak", _JAILBREAK_CASED, view="cased"),
    PatternRule("system-prompt-leak", _SYSTEM_PROMPT_LEAK),
    PatternRule("fake-section", _FAKE_SECTION),
    PatternRule("fake-section", _FAKE_SECTION_CASED, view="cased"),
    PatternRule("fence-escape", _FENCE_ESCAPE),
    PatternRule("exfiltration", _EXFILTRATION),
    PatternRule("tool-hijack", _TOOL_HIJACK),
    PatternRule("verdict-manipulation", _VERDICT_MANIPULATION),
    PatternRule("addressed-to-model", _ADDRESSED_TO_MODEL),
    PatternRule("obfuscation", _OBFUSCATION, view="raw"),
)
"""The default rules (findings at the same position are ordered by rule name)."""


RULE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(rule.name for rule in DEFAULT_RULES))
"""The stable names of the default rules."""
