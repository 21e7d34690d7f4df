{#
  Models land exactly in the target's schema (`analytics`, or PROMO_DBT_SCHEMA),
  never in dbt's default `<target_schema>_<custom_schema>`. A model that sets
  `schema:` explicitly gets that schema verbatim.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
