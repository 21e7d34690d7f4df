{#
  The run date D (var `run_date`, YYYY-MM-DD) as SQL literals. "Before D" means
  strictly before D 00:00 UTC; warehouse timestamps are UTC without time zone.
#}
{% macro validated_run_date() -%}
    {%- set value = var("run_date") | string -%}
    {%- if not modules.re.match("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", value) -%}
        {{ exceptions.raise_compiler_error(
            "var run_date=" ~ value ~ " is not a YYYY-MM-DD date; pass e.g. --vars '{run_date: 2026-10-31}'"
        ) }}
    {%- endif -%}
    {{- value -}}
{%- endmacro %}

{% macro run_date() -%}
    cast('{{ validated_run_date() }}' as date)
{%- endmacro %}

{% macro run_date_ts() -%}
    cast('{{ validated_run_date() }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#
  First day an incremental model re-processes on a night: run_date minus var
  incremental_lookback_days (default 3), as a date literal. Computed in Jinja so
  both adapters see the same plain literal.
#}
{% macro incremental_window_start() -%}
    {%- set day = modules.datetime.date.fromisoformat(validated_run_date()) -%}
    {%- set lookback = var("incremental_lookback_days", 3) | int -%}
    cast('{{ (day - modules.datetime.timedelta(days=lookback)).isoformat() }}' as date)
{%- endmacro %}
