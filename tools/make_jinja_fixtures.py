#!/usr/bin/env python3
"""Reference renders for Osprey's Jinja engine (src/Osprey/Tokenization/Jinja).

Writes tests/fixtures/jinja/cases.json (each case: name, template, variables) from the definitions below and
renders every case with jinja2 into tests/fixtures/jinja/expected.json: {name: {"output": text}} or, when the
render fails, {name: {"error": message, "raised": true|false}} ("raised" marks raise_exception()).
The C# test (tests/Osprey.Tests/Tokenization/Jinja/JinjaFixtureTests.cs) demands exact equality of outputs and
of raise_exception messages, and an error for every other failing case.

The environment is configured as transformers' chat-template environment, per
transformers/utils/chat_template_utils.py `_compile_jinja_template` (transformers 4.4x and later):
  * jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
    extensions=[AssistantTracker, jinja2.ext.loopcontrols])  -- AssistantTracker only adds the
    {% generation %} block, which renders its body unchanged;
  * filters["tojson"] = tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    returning json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    (transformers replaces Jinja's HTML-escaping tojson);
  * globals["raise_exception"] raises jinja2.exceptions.TemplateError(message);
  * globals["strftime_now"](format) returns datetime.now().strftime(format).
Only jinja2 (3.1.x) is needed here. The final parity check against transformers' own apply_chat_template (and
real tokenizer_config.json templates) happens on the GPU machine in a later issue.

Usage: python3 tools/make_jinja_fixtures.py
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jinja_chat_templates import TEMPLATES  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "jinja")


class GenerationBlock(jinja2.ext.Extension):
    """Stands in for transformers' AssistantTracker: {% generation %}...{% endgeneration %} renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# --- unit cases: (name, template, variables) ------------------------------------------------------------------
V = {"s": "Hello World", "n": 7, "f": 2.5, "l": ["a", "b", "c"], "d": {"x": 1, "y": "two"}, "e": [], "z": None,
     "t": True, "msgs": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "yo"}]}

UNIT = [
    # text, output, whitespace control
    ("text_plain", "just text", {}),
    ("text_trailing_newline", "line\n", {}),
    ("text_two_trailing_newlines", "line\n\n", {}),
    ("text_crlf", "a\r\nb{% if true %}\r\nc{% endif %}\r\n", {}),
    ("output_basic", "Hi {{ s }}!", V),
    ("ws_minus_both", "a  {{- s -}}  b", V),
    ("ws_block_minus", "a\n  {%- if t -%}\n  x\n  {%- endif -%}\n  b", V),
    ("ws_trim_blocks", "{% if t %}\nyes\n{% endif %}\nafter", V),
    ("ws_lstrip_blocks", "start\n    {% if t %}\n    inner\n    {% endif %}\nend", V),
    ("ws_lstrip_not_after_text", "x {% if t %}y{% endif %} z", V),
    ("ws_plus_disables_lstrip", "a\n    {%+ if t %}b{% endif %}", V),
    ("ws_plus_disables_trim", "{% if t +%}\nb{% endif %}", V),
    ("ws_var_no_trim", "{{ n }}\nnext\n  {{ n }}", V),
    ("ws_comment_trim", "a\n  {# comment #}\nb", {}),
    ("ws_comment_minus", "a   {#- comment -#}   b", {}),
    ("ws_lstrip_after_var_line", "{{ n }}\n  {% if t %}x{% endif %}", V),
    ("ws_lstrip_after_block_same_line", "{% if t %}  {% if t %}x{% endif %}{% endif %}", V),
    ("ws_tabs", "a\n\t\t{% if t %}\n\tb\n\t\t{% endif %}\nc", V),
    ("raw_block", "{% raw %}{{ not parsed }}{% endraw %}", {}),
    ("comment_multiline", "a{# line1\nline2 #}b", {}),
    # literals
    ("lit_strings", "{{ 'single' }}|{{ \"double\" }}|{{ 'esc\\'q' }}|{{ \"tab\\there\" }}|{{ 'nl\\nx' }}|{{ 'a' 'b' }}", {}),
    ("lit_unicode_escape", "{{ '\\u00e9\\x41' }}", {}),
    ("lit_numbers", "{{ 42 }} {{ -3 }} {{ 1.5 }} {{ 2.0 }} {{ 1e3 }} {{ 1_000 }} {{ 0.1 + 0.2 }} {{ 1e-7 }} {{ 1e20 }}", {}),
    ("lit_bools_none", "{{ true }} {{ false }} {{ none }} {{ True }} {{ False }} {{ None }}", {}),
    ("lit_list_repr", "{{ [1, 'a', none, true, 2.5] }} {{ [] }} {{ [[1], ['x']] }}", {}),
    ("lit_dict_repr", "{{ {'a': 1, 'b': [1, 2], 'c': {'d': none}} }} {{ {} }}", {}),
    ("lit_tuple_repr", "{{ (1, 2) }} {{ (1,) }} {{ () }}", {}),
    ("lit_str_repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'back\\\\slash', 'nl\\n'] }}", {}),
    ("var_list_repr", "{{ l }} {{ d }} {{ z }} {{ t }}", V),
    # operators
    ("op_arith", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 8 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2.5 * 2 }}", {}),
    ("op_precedence", "{{ 2 + 3 * 4 }} {{ (2 + 3) * 4 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }}", {}),
    ("op_concat", "{{ 'a' ~ 1 ~ none ~ true ~ [1] }} {{ 'x' + 'y' }} {{ [1] + [2] }} {{ 'ab' * 3 }}", {}),
    ("op_compare", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 3 > 4 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ [1, 2] == [1, 2] }} {{ true == 1 }}", {}),
    ("op_logic", "{{ true and false }} {{ true or false }} {{ not true }} {{ none or 'x' }} {{ 'a' and 'b' }} {{ 0 or [] }} {{ not none }}", {}),
    ("op_in", "{{ 'a' in l }} {{ 'q' in l }} {{ 'x' in d }} {{ 'ell' in s }} {{ 'q' not in s }} {{ 1 not in [1] }}", V),
    ("op_ternary", "{{ 'yes' if t else 'no' }} {{ 'yes' if z else 'no' }} [{{ 'only' if z }}] {{ 1 if false else 2 if true else 3 }}", V),
    ("op_unary_filter", "{{ -n | abs }} {{ -(n | abs) }} {{ not t is defined }}", V),
    # attribute / item access, slicing
    ("access_attr_item", "{{ d.x }} {{ d['y'] }} {{ l[0] }} {{ l[-1] }} {{ l.1 }} {{ msgs[1].content }} {{ msgs[0]['role'] }}", V),
    ("access_missing", "[{{ d.nope }}][{{ l[10] }}][{{ d['nope'] }}][{{ undefined_var }}]", V),
    ("access_slices", "{{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[-2:] }} {{ s[:5] }} {{ s[::-1] }} {{ l[::2] }} {{ l[5:] }} {{ s[-5:-1] }}", V),
    ("access_method_vs_key", "{{ d.items() | list }} {{ d.get('x') }} {{ d.get('q', 'dflt') }} {{ d.get('q') }}", V),
    # for loops
    ("for_basic", "{% for x in l %}{{ x }}{% endfor %}", V),
    ("for_loop_vars", "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %}", V),
    ("for_prev_next", "{% for x in l %}[{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}]{% endfor %}", V),
    ("for_else", "{% for x in e %}{{ x }}{% else %}empty{% endfor %}{% for x in l %}{{ x }}{% else %}empty{% endfor %}", V),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", V),
    ("for_unpack_filter_items", "{% for k, v in d | items %}{{ k }}={{ v }};{% endfor %}", V),
    ("for_dict_keys", "{% for k in d %}{{ k }}{% endfor %}", V),
    ("for_string", "{% for c in 'abc' %}{{ c }}-{% endfor %}", {}),
    ("for_filter_if", "{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}", {}),
    ("for_break_continue", "{% for x in [1, 2, 3, 4, 5] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("for_undefined", "[{% for x in nothing %}{{ x }}{% endfor %}]", {}),
    ("for_nested_loop", "{% for a in [1, 2] %}{% for b in ['x', 'y'] %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("for_scope_no_leak", "{% set x = 'outer' %}{% for i in [1, 2] %}{% set x = i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("for_range", "{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}{% for i in range(3, 0, -1) %}{{ i }}{% endfor %}", {}),
    ("for_cycle", "{% for x in l %}{{ loop.cycle('odd', 'even') }} {% endfor %}", V),
    ("for_over_reversed_messages", "{% for m in msgs[::-1] %}{{ m.role }}{{ loop.index0 }} {% endfor %}", V),
    # if
    ("if_elif_else", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}other{% endif %} {% endfor %}", {}),
    ("if_truthiness", "{% for v in [0, 1, '', 'x', [], [0], {}, none, 0.0] %}{% if v %}T{% else %}F{% endif %}{% endfor %}", {}),
    # set
    ("set_basic", "{% set a = 1 %}{% set b = a + 1 %}{{ a }}{{ b }}", {}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}),
    ("set_block", "{% set x %}inner {{ n }}{% endset %}[{{ x }}]", V),
    ("set_block_filter", "{% set x | upper %}shout{% endset %}{{ x }}", {}),
    ("set_overrides_var", "{% set messages = msgs[1:] %}{{ messages | length }}", V),
    ("namespace_basic", "{% set ns = namespace(count=0, found=false) %}{% for x in l %}{% set ns.count = ns.count + 1 %}{% if x == 'b' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }}", V),
    ("namespace_attr_missing", "{% set ns = namespace() %}[{{ ns.nothing }}]{{ ns.nothing is defined }}", {}),
    # macros
    ("macro_defaults", "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bo', 'Hi') }} {{ greet(name='Cy', greeting='Yo') }}", {}),
    ("macro_uses_outer", "{% set sep = '|' %}{% macro j(xs) %}{{ xs | join(sep) }}{% endmacro %}{{ j(l) }}", V),
    ("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}][{{ b }}]{% endmacro %}{{ m(1) }}", {}),
    # filters
    ("filter_tojson", "{{ d | tojson }} {{ l | tojson }} {{ 'héllo \"q\" \\n' | tojson }} {{ none | tojson }} {{ 1.0 | tojson }} {{ t | tojson }}", V),
    ("filter_tojson_indent", "{{ {'a': [1, {'b': none}], 'c': {}, 'e': []} | tojson(indent=2) }}", {}),
    ("filter_tojson_separators_sort", "{{ {'b': 1, 'a': [1, 2]} | tojson(separators=(',', ':'), sort_keys=true) }}", {}),
    ("filter_tojson_unicode", "{{ {'k': '世界 é \\u0001'} | tojson }}", {}),
    ("filter_string_case", "{{ s | upper }} {{ s | lower }} {{ 'hello wORLD-foo bar' | title }} {{ 'hELLO world' | capitalize }}", V),
    ("filter_trim", "[{{ '  x y \\n' | trim }}][{{ 'xxhixx' | trim('x') }}]", {}),
    # Python's whitespace includes the separators U+001C-U+001F, which .NET's does not.
    ("filter_trim_python_whitespace", "[{{ s | trim }}][{{ s.strip() }}][{{ s.split() | join('|') }}][{{ s.isspace() }}]",
     {"s": "\x1c\x1d a\x1fb \x1e\u3000"}),
    ("filter_length", "{{ l | length }} {{ s | length }} {{ d | count }} {{ e | length }} {{ 'héllo' | length }}", V),
    ("filter_default", "{{ nope | default('dflt') }} {{ z | default('dflt') }} {{ z | default('dflt', true) }} {{ '' | d('empty', boolean=true) }} {{ n | default(0) }}", V),
    ("filter_first_last", "{{ l | first }} {{ l | last }} {{ s | first }} [{{ e | first }}]", V),
    ("filter_join", "{{ l | join }} {{ l | join(', ') }} {{ [1, 2] | join('-') }} {{ msgs | join(',', attribute='role') }}", V),
    ("filter_replace", "{{ s | replace('o', '0') }} {{ s | replace('o', '0', 1) }}", V),
    ("filter_list", "{{ 'abc' | list }} {{ d | list }}", V),
    ("filter_selectattr", "{{ msgs | selectattr('role', 'equalto', 'user') | list }} {{ msgs | rejectattr('role', 'equalto', 'system') | map(attribute='content') | list }}", V),
    ("filter_selectattr_defined", "{{ [{'a': 1}, {'b': 2}] | selectattr('a', 'defined') | list }} {{ [{'a': 1}, {'a': 0}] | selectattr('a') | list }}", {}),
    ("filter_select_reject", "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('odd') | list }} {{ [0, 1, '', 'a'] | select | list }}", {}),
    ("filter_map", "{{ msgs | map(attribute='role') | join(',') }} {{ l | map('upper') | list }} {{ [{'a': 1}, {}] | map(attribute='a', default=9) | list }}", V),
    ("filter_string_safe", "{{ 12 | string }} {{ l | string }} {{ 'x' | safe }} {{ (1 | string) + 'a' }}", V),
    ("filter_int_float", "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 3 | float }} {{ 'x' | float }} {{ true | int }}", {}),
    ("filter_abs_round", "{{ -3 | abs }} {{ -2.5 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }}", {}),
    ("filter_indent", "[{{ 'a\\nb\\n\\nc' | indent(2) }}][{{ 'a\\nb' | indent(2, true) }}][{{ 'a\\n\\nb' | indent(2, blank=true) }}][{{ 'x\\n' | indent }}]", {}),
    ("filter_unique", "{{ ['a', 'B', 'b', 'a', 'c'] | unique | list }} {{ ['a', 'A'] | unique(case_sensitive=true) | list }}", {}),
    ("filter_reverse", "{{ l | reverse | list }} {{ 'abc' | reverse }}", V),
    ("filter_sort", "{{ ['b', 'C', 'a'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ ['b', 'C', 'a'] | sort(case_sensitive=true) }} {{ msgs | sort(attribute='role') | map(attribute='role') | list }}", V),
    ("filter_dictsort", "{{ {'b': 1, 'a': 2} | dictsort }} {{ {'b': 1, 'a': 2} | dictsort(by='value') }} {{ {'b': 1, 'a': 2} | dictsort(reverse=true) }}", {}),
    ("filter_wordcount", "{{ 'one two, three-four' | wordcount }}", {}),
    ("filter_batch", "{{ [1, 2, 3, 4, 5] | batch(2) | list }} {{ [1, 2, 3] | batch(2, 0) | list }}", {}),
    ("filter_items", "{{ d | items | list }}", V),
    ("filter_chain", "{{ '  Mixed Case  ' | trim | lower | replace(' ', '_') }}", {}),
    ("filter_min_max_sum", "{{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ [1, 2, 3] | sum }} {{ ['b', 'A'] | max }}", {}),
    ("filter_escape", "{{ '<a href=\"x\">&\\'</a>' | e }}", {}),
    ("filter_block", "{% filter upper %}shout {{ n }}{% endfilter %}", V),
    # tests
    ("test_defined", "{{ s is defined }} {{ nope is defined }} {{ nope is undefined }} {{ d.x is defined }} {{ d.q is defined }}", V),
    ("test_types", "{{ z is none }} {{ s is string }} {{ n is number }} {{ f is number }} {{ n is integer }} {{ f is float }} {{ n is float }} {{ t is boolean }} {{ t is number }} {{ t is integer }}", V),
    ("test_containers", "{{ d is mapping }} {{ l is mapping }} {{ l is iterable }} {{ s is iterable }} {{ n is iterable }} {{ l is sequence }} {{ s is sequence }} {{ d is sequence }} {{ nope is iterable }}", V),
    ("test_bool_values", "{{ t is true }} {{ t is false }} {{ 1 is true }} {{ false is false }} {{ none is false }}", V),
    ("test_compare", "{{ n is equalto 7 }} {{ n is eq 7 }} {{ n == 7 }} {{ n is ne 7 }} {{ n is divisibleby 7 }} {{ n is odd }} {{ n is even }} {{ 'a' is in l }} {{ n is gt 3 }} {{ n is lt(3) }}", V),
    ("test_case", "{{ 'abc' is lower }} {{ 'Abc' is lower }} {{ 'ABC' is upper }}", {}),
    ("test_is_not", "{{ z is not none }} {{ s is not string }} {{ nope is not defined }}", V),
    ("test_sameas", "{{ z is sameas none }} {{ t is sameas true }} {{ 1 is sameas true }}", V),
    # string methods
    ("str_split", "{{ 'a,b,,c'.split(',') }} {{ '  a  b c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'a b  c'.split(none, 1) }}", {}),
    ("str_strip", "[{{ '  x  '.strip() }}][{{ '\\n\\nx\\n'.lstrip('\\n') }}][{{ 'x\\n\\n'.rstrip('\\n') }}][{{ 'xyhiyx'.strip('xy') }}][{{ '  x '.lstrip() }}][{{ ' x  '.rstrip() }}]", {}),
    ("str_starts_ends", "{{ s.startswith('Hell') }} {{ s.endswith('World') }} {{ s.startswith(('x', 'H')) }} {{ s.endswith('x') }}", V),
    ("str_case_methods", "{{ s.upper() }} {{ s.lower() }} {{ 'hello wORLD-foo' .title() }} {{ 'hELLO' .capitalize() }}", V),
    ("str_find_count_replace", "{{ s.find('o') }} {{ s.find('z') }} {{ s.count('o') }} {{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 2) }}", V),
    ("str_think_split", "{% set c = '<think>\\nreason\\n</think>\\n\\nanswer' %}[{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}][{{ c.split('</think>')[-1].lstrip('\\n') }}]", {}),
    ("str_join_format", "{{ ', '.join(l) }} {{ '{} and {}'.format('a', 'b') }} {{ '{x}!'.format(x=1) }}", V),
    ("str_index_char", "{{ s[0] }} {{ s[-1] }} {{ s | length }}", V),
    # dict methods
    ("dict_methods", "{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d.get('y') }}", V),
    ("dict_literal_in_template", "{% set m = {'role': 'user', 'content': 'x'} %}{{ m.role }} {{ m['content'] }} {{ m | tojson }}", {}),
    # globals
    ("global_dict_range", "{{ dict(a=1, b='x') }} {{ range(4) | list }} {{ range(2, 5) | sum }}", {}),
    ("global_strftime_static", "{{ strftime_now('%%') }}", {}),
    ("generation_block", "{% for m in msgs %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.role }}{% endif %}{% endfor %}", V),
    # undefined behaviour
    ("undefined_ops", "[{{ nope }}][{{ nope | length }}][{{ nope | default('d') }}][{{ 'a' ~ nope }}][{{ nope == nope }}][{{ nope | string }}][{% if nope %}t{% else %}f{% endif %}][{{ 'x' in nope }}]", {}),
    ("none_renders", "[{{ none }}][{{ z }}][{{ z | string }}]", V),
    # raise_exception and errors
    ("raise_basic", "before{{ raise_exception('Custom failure: roles must alternate') }}", {}),
    ("raise_in_loop", "{% for m in msgs %}{% if m.role == 'assistant' %}{{ raise_exception('Assistant at ' ~ loop.index0) }}{% endif %}{% endfor %}", V),
    ("error_undefined_attr", "{{ nope.attr }}", {}),
    ("error_add_types", "{{ 1 + 'a' }}", {}),
    ("error_unknown_filter_syntax", "{{ x | }}", {}),
    ("error_unclosed_block", "{% if true %}never closed", {}),
]


# More edge cases: scoping, parsing corners, multimodal content, unicode.
MM = [{"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image"}, {"type": "text", "text": " this."}]},
      {"role": "assistant", "content": "A cat. 😀"}]
UNIT += [
    ("scope_counter_in_loop", "{% set c = 0 %}{% for i in [1, 2, 3] %}{% set c = c + 1 %}{{ c }}{% endfor %}{{ c }}", {}),
    ("scope_if_leaks", "{% if true %}{% set a = 5 %}{% endif %}{{ a }}", {}),
    ("scope_loop_read_outer", "{% set p = 'P' %}{% for i in [1, 2] %}{{ p }}{{ i }}{% endfor %}", {}),
    ("scope_nested_loop_var", "{% for a in [[1, 2], [3]] %}{% for b in a %}{{ loop.index }}/{{ loop.length }} {% endfor %}{{ loop.index }}/{{ loop.length }}; {% endfor %}", {}),
    ("scope_macro_set_local", "{% set x = 1 %}{% macro m() %}{% set x = 2 %}{{ x }}{% endmacro %}{{ m() }}{{ x }}", {}),
    ("parse_braces_in_strings", "{{ '}}' }}{{ '{%' ~ '%}' }}{{ {'a': {'b': [1, {'c': 2}]}} }}", {}),
    ("parse_filter_then_call_method", "{{ ('  a b  ' | trim).split(' ') }} {{ 'abc'[1:].upper() }} {{ [3, 1, 2] | sort | first }}", {}),
    ("parse_filter_no_parens_compare", "{{ l | length > 2 }} {{ not l | length }} {{ l | length + 1 }}", V),
    ("parse_ternary_in_set", "{% set m = msgs[0]['content'] if msgs[0]['role'] == 'system' else '' %}[{{ m }}]", V),
    ("parse_multiline_tag", "{{\n  'a'\n  ~ 'b'\n}}{%\n  if true\n%}c{% endif %}", {}),
    ("parse_dotted_index", "{{ msgs.0.role }} {{ msgs.2['content'] }}", V),
    ("parse_is_test_in_condition", "{% if n is divisibleby 7 and n is odd %}yes{% endif %}{{ 'x' if n is number else 'y' }}", V),
    ("parse_not_in_and_precedence", "{{ not 1 in [1] }} {{ not (1 in [2]) }} {{ 1 in [1] and 2 not in [1] }}", {}),
    ("parse_comment_strip_both", "a\n{#- c -#}\nb\n  {#+ keep +#}\nc", {}),
    ("parse_set_then_trim", "{% set a = 1 -%}\n\n   x{%- set b = 2 %}\ny", {}),
    ("ws_nested_blocks_indented", "<ul>\n  {% for x in l %}\n    {% if x != 'b' %}\n    <li>{{ x }}</li>\n    {% endif %}\n  {% endfor %}\n</ul>\n", V),
    ("ws_var_minus_newlines", "a\n\n{{- 'b' -}}\n\nc", {}),
    ("ws_minus_into_lstrip", "x\n    {%- if t %}\n    y\n    {% endif -%}\n    z", V),
    ("multimodal_content", "{% for m in msgs %}{% if m.content is string %}{{ m.content }}{% else %}{% for c in m.content %}{% if c.type == 'text' %}{{ c.text }}{% elif c.type == 'image' %}<image>{% endif %}{% endfor %}{% endif %}|{% endfor %}", {"msgs": MM}),
    ("unicode_len_slice", "{{ 'a😀b' | length }} {{ 'a😀b'[1] }} {{ 'a😀b'[::-1] }} {{ 'a😀b' | tojson }} {{ ['😀'] }}", {}),
    ("unicode_upper", "{{ 'éà' | upper }} {{ 'ÉÀ'.lower() }}", {}),
    ("numbers_division_repr", "{{ 1 / 3 }} {{ 10 / 4 }} {{ 2 ** -1 }} {{ 1e16 }} {{ 123456789012345678 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.5 }} {{ 3.0 * 2 }} {{ 7 // 2.0 }} {{ 7.5 % 2 }}", {}),
    ("numbers_json", "{{ [1.0, 2.5, 1e-7, 100000000000000000000.0, -0.0] | tojson }}", {}),
    ("default_attr_chain", "{{ msgs[0].tool_calls | default([]) | length }} {{ msgs[0].nope is defined }} {{ (msgs[0].nope or 'fallback') }}", V),
    ("select_filter_count", "{{ msgs | selectattr('role', 'equalto', 'user') | list | length }} {{ msgs | map(attribute='role') | select('in', ['user', 'assistant']) | list }}", V),
    ("loop_filtered_last", "{% for m in msgs if m.role != 'system' %}{{ m.role }}{% if not loop.last %},{% endif %}{% endfor %}", V),
    ("namespace_list_accumulate", "{% set ns = namespace(items=[]) %}{% for m in msgs %}{% set ns.items = ns.items + [m.role[:1]] %}{% endfor %}{{ ns.items | join('') }}", V),
    ("string_concat_none", "{{ 'a' ~ z }} {{ z | string }} {{ [z] }}", V),
    ("strip_split_join", "{{ '  line1\\nline2  '.strip().split('\\n') | join(' / ') }}", {}),
    ("dict_repr_keys", "{{ {1: 'a', 'b': 2.0, 'c': none} }} {{ {1: 'a'} | tojson }}", {}),
    ("tojson_nested_tuple", "{{ (1, 'a', [none]) | tojson }} {{ d | tojson(indent=1) }}", V),
    ("macro_recursion_and_args", "{% macro fmt(v) %}{% if v is mapping %}{{ '{' }}{% for k, x in v.items() %}{{ k }}:{{ fmt(x) }}{% if not loop.last %},{% endif %}{% endfor %}{{ '}' }}{% elif v is string %}'{{ v }}'{% else %}{{ v }}{% endif %}{% endmacro %}{{ fmt({'a': 1, 'b': {'c': 'x'}}) }}", {}),
    ("truthiness_strings", "{% if 'False' %}t{% endif %}{% if '0' %}t{% endif %}{% if ' ' %}t{% endif %}", {}),
    ("compare_mixed_eq", "{{ 'a' == 1 }} {{ none == false }} {{ [] == [] }} {{ {'a': 1} == {'a': 1} }} {{ 1.5 > 1 }}", {}),
    ("error_none_len", "{{ z | length }}", V),
    ("error_items_on_list", "{{ l.items() }}", V),
    ("error_compare_types", "{{ 1 < 'a' }}", {}),
    ("raise_in_macro", "{% macro check(r) %}{% if r not in ['user', 'assistant'] %}{{ raise_exception('Unknown role: ' + r) }}{% endif %}{% endmacro %}{% for m in msgs %}{{ check(m.role) }}{% endfor %}", V),
]

UNIT += [
    ("with_block", "{% set a = 'outer' %}{% with a = 'inner', b = 2 %}{{ a }}{{ b }}{% endwith %}{{ a }}[{{ b }}]", {}),
    ("percent_format", "{{ '%s-%s' % (1, 'a') }}|{{ '%d' % 3.7 }}|{{ '%05.2f' % 3.14159 }}|{{ '%5s|%-5s|' % ('ab', 'cd') }}|{{ '%(x)s=%(y)d' % {'x': 'k', 'y': 4} }}|{{ '100%%' % () }}|{{ '%r' % 'q' }}|{{ '%x %X %o %#x' % (255, 255, 8, 255) }}|{{ '%.3e' % 12345.678 }}|{{ '%+d % d' % (5, 5) }}|{{ '%s' % [1, 2] }}", {}),
    ("percent_format_single", "{{ 'Hello %s!' % name }} {{ '%s' % none }} {{ '%.1f%%' % 99.95 }}", {"name": "Ann"}),
    ("error_percent_missing", "{{ '%s %s' % ('one',) }}", {}),
]

UNIT += [
    ("ws_leading_spaces_start", "   {% if true %}x{% endif %}", {}),
    ("ws_spaces_before_newline_after_tag", "{% if t %}   \n  {% endif %}|", V),
    ("ws_comment_in_loop", "{% for x in l %}\n  {# note #}\n  {{ x }}\n{% endfor %}", V),
    ("ws_mixed_real", "{%- for m in msgs %}\n<{{ m.role }}>\n{{- m.content -}}\n</{{ m.role }}>\n{% endfor -%}\nEND", V),
    ("slices_more", "{{ l[1:-1] }} {{ l[-1:0:-1] }} {{ s[100:] }} {{ s[::-2] }} {{ l[-100:1] }} {{ l[:-5] }}", V),
    ("arith_more", "{{ -7 / 2 }} {{ 7 % -3 }} {{ -7.5 // 2 }} {{ 2 ** 0.5 }} {{ 0.1 * 3 }} {{ true + 1 }} {{ 'x' * 0 }} {{ [1, 2] * 2 }} {{ 3 * 'ab' }} {{ 1e300 * 1e10 }} {{ -0.0 }}", {}),
    ("compare_more", "{{ 'ab' < 'abc' }} {{ [1, 2] < [1, 3] }} {{ none is none }} {{ 1 is sameas 1 }} {{ 'B' < 'a' }} {{ 1.0 == 1 }} {{ {1.0: 'a'}[1] }}", {}),
    ("filters_more", "{{ {'b': 1, 'A': 2} | dictsort(true) }} {{ 'a-b_c d(e' | title }} {{ '  ' | trim | length }} {{ 'Hi' | replace('', '-') }} {{ [1, 'a'] | join(', ') }} {{ l | first | upper }} {{ 5 | string | length }} {{ l | map('length') | list }} {{ [1, 2, 3] | sum(start=10) }} {{ 'abc' | center(9) }}|{{ 'ab' | center(7) }}|", V),
    ("filter_format", "{{ '%s and %d' | format('x', 4) }} {{ '%(a)s' | format(a='kw') }}", {}),
    ("str_methods_more", "{{ 'a\\tb  c'.split() }} {{ 'abc'.startswith('') }} {{ 'aaa'.count('aa') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ 'abcabc'.find('b', 2) }} {{ 'abcabc'.rfind('b') }} {{ 'x'.join(['1', '2']) }} {{ 'ab12'.isalnum() }} {{ '12'.isdigit() }}", {}),
    ("namespace_repr_and_loop_outside", "{% set ns = namespace(a=1) %}{{ ns }} [{{ loop }}] {{ loop is defined }}", {}),
    ("for_unpack_lists", "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }} {% endfor %}{% for x in [1, 2, 3] %}{{ loop.previtem is defined }}{% endfor %}", {}),
    ("for_break_length", "{% for x in [1, 2, 3, 4] %}{{ loop.length }}{% if loop.index == 2 %}{% break %}{% endif %}{% endfor %}", {}),
    ("misc_exprs", "{{ d['x'] + d.x }} {{ 'abc'[0:2] ~ 'abc'[-1] }} {{ 'a' 'b' ~ 'c' }} {{ l[n] }}| {{ none | default('x', true) }} {{ 1 if none is none }}", V),
    ("error_split_empty", "{{ 'abc'.split('') }}", {}),
]

# --- conversations for the real templates -------------------------------------------------------------------
TOOLS_RICH = [{"type": "function", "function": {"name": "search", "description": "  Search the web.  ",
               "parameters": {"type": "object", "required": ["query"], "properties": {
                   "query": {"type": "string"}, "limit": {"type": "integer"}, "internal": {"type": "string"},
                   "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                   "filters": {"type": "object", "properties": {"site": {"type": "string"}, "after": {"type": "Number"}}},
                   "any": {}}}}},
              {"name": "bare_tool", "parameters": {"type": "object", "properties": {}}}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city, e.g. Zürich"},
                                                          "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                         "required": ["city"]}}}]

CONVS = {
    "sys": [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello! Wie geht's? 世界"},
            {"role": "assistant", "content": "  I'm fine, thanks.  "},
            {"role": "user", "content": "Tell me a joke."}],
    "nosys": [{"role": "user", "content": "Hi"},
              {"role": "assistant", "content": "Hello there."},
              {"role": "user", "content": "Bye\n"}],
    "tools": [{"role": "system", "content": "Use tools when needed."},
              {"role": "user", "content": "Weather in Zürich?"},
              {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}]},
              {"role": "tool", "content": "{\"temp\": 21.5, \"sky\": \"clear\"}"},
              {"role": "assistant", "content": "It is 21.5 °C and clear."}],
    "think": [{"role": "user", "content": "What is 2+2?"},
              {"role": "assistant", "content": "<think>\nSimple arithmetic.\n</think>\n\n2+2 = 4."},
              {"role": "user", "content": "And 3+3?"},
              {"role": "assistant", "content": "<think>\nAgain simple.\n</think>\n\n6."}],
    "mistral_tools": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Weather in Oslo?"},
                      {"role": "assistant", "tool_calls": [{"id": "abc123xyz", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
                      {"role": "tool", "tool_call_id": "abc123xyz", "content": "{'temp': -3}"},
                      {"role": "assistant", "content": " Cold: -3. "},
                      {"role": "user", "content": "Thanks"}],
    "mistral_bad_id": [{"role": "user", "content": "Weather?"},
                       {"role": "assistant", "tool_calls": [{"id": "short", "type": "function", "function": {"name": "f", "arguments": {}}}]}],
    "bad_alternation": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
    "deepseek_tools": [{"role": "system", "content": "SYS"},
                       {"role": "user", "content": "Weather?"},
                       {"role": "assistant", "content": None, "tool_calls": [
                           {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                           {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
                       {"role": "tool", "content": "sunny"},
                       {"role": "tool", "content": "rainy"},
                       {"role": "assistant", "content": "Paris is sunny, Rome rainy."}],
}

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>"}

REAL = []
for tname, convs in [
    ("qwen25", ["sys", "nosys", "tools", "think"]),
    ("llama31", ["sys", "nosys", "tools"]),
    ("gemma", ["nosys", "bad_alternation", "sys"]),
    ("mistral", ["nosys", "bad_alternation", "sys"]),
    ("qwen3", ["sys", "nosys", "tools", "think"]),
    ("deepseek", ["sys", "nosys", "think", "deepseek_tools"]),
    ("zephyr_indented", ["sys", "nosys"]),
    ("llama2", ["sys", "nosys", "bad_alternation"]),
    ("phi3", ["sys", "nosys"]),
    ("mistral_tools", ["sys", "nosys", "mistral_tools", "mistral_bad_id", "bad_alternation"]),
    ("ts_tools", ["sys"]),
]:
    for conv in convs:
        for agp in (True, False):
            base = {"messages": CONVS[conv], "add_generation_prompt": agp, **SPECIAL}
            REAL.append((f"{tname}_{conv}_gen{int(agp)}", TEMPLATES[tname], base))
        if conv in ("tools", "mistral_tools") or (tname in ("qwen25", "qwen3") and conv == "sys"):
            REAL.append((f"{tname}_{conv}_with_tools", TEMPLATES[tname],
                         {"messages": CONVS[conv], "add_generation_prompt": True, "tools": TOOLS, **SPECIAL}))
    if tname == "ts_tools":
        REAL.append(("ts_tools_rich", TEMPLATES[tname],
                     {"messages": CONVS["tools"], "add_generation_prompt": True, "tools": TOOLS_RICH, **SPECIAL}))
    if tname == "qwen3":
        for think in (True, False):
            REAL.append((f"qwen3_think_enable_thinking_{int(think)}", TEMPLATES[tname],
                         {"messages": CONVS["think"], "add_generation_prompt": True, "enable_thinking": think, **SPECIAL}))
    if tname == "llama31":
        REAL.append(("llama31_tools_system_prompt", TEMPLATES[tname],
                     {"messages": CONVS["sys"], "add_generation_prompt": True, "tools": TOOLS,
                      "tools_in_user_message": False, "date_string": "01 Jan 2025", **SPECIAL}))
        REAL.append(("llama31_builtin_tools", TEMPLATES[tname],
                     {"messages": CONVS["nosys"], "add_generation_prompt": True,
                      "builtin_tools": ["code_interpreter", "brave_search", "wolfram_alpha"], **SPECIAL}))


def main():
    env = make_env()
    cases = [{"name": n, "template": t, "variables": v} for n, t, v in UNIT + REAL]
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    expected = {}
    for case in cases:
        try:
            out = env.from_string(case["template"]).render(**case["variables"])
            expected[case["name"]] = {"output": out}
        except jinja2.exceptions.TemplateSyntaxError as e:
            expected[case["name"]] = {"error": str(e), "raised": False}
        except jinja2.exceptions.TemplateError as e:
            raised = type(e) is jinja2.exceptions.TemplateError
            expected[case["name"]] = {"error": str(e), "raised": raised}
        except Exception as e:  # TypeError and friends from Python operations
            expected[case["name"]] = {"error": f"{type(e).__name__}: {e}", "raised": False}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, jinja2 {jinja2.__version__}: "
          f"{sum('error' in v for v in expected.values())} errors")


if __name__ == "__main__":
    main()
