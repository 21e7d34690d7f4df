{#
  The rows of `relation`, or no rows with the same columns and types when the
  relation does not exist yet (the published tables before the first publish, a
  warehouse nothing has been loaded into: dbt run by hand, tests). `columns` maps
  each column name to its SQL type, in the table's order.
#}
{% macro source_or_empty(relation, columns) -%}
    {%- set exists = (load_relation(relation) is not none) if execute else true -%}
    {%- if exists %}
    select * from {{ relation }}
    {%- else %}
    select
    {%- for name, data_type in columns.items() %}
        cast(null as {{ data_type }}) as {{ name }}{{ "," if not loop.last }}
    {%- endfor %}
    where 1 = 0
    {%- endif %}
{%- endmacro %}
