// Routing rules: the list in the order proxies try them, create / edit (with a dry-run
// preview), enable / disable, delete, and reorder by drag and drop or Move up / down.
import { useEffect, useRef, useState, type DragEvent } from "react";
import { useSearchParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch } from "../api/client";
import type { Schemas } from "../api/types";
import { useOrg } from "../auth/useOrg";
import { ConfirmButton, EmptyState, ErrorState, Loading, PageHeader } from "../components";
import RuleForm from "./rules/RuleForm";
import {
  EMPTY_DRAFT,
  PREFILL_KEYS,
  describeMatch,
  describeTarget,
  draftFromQuery,
  draftFromRule,
  moved,
  type Rule,
  type RuleDraft,
} from "./rules/ruleDraft";
import { errorMessage } from "./settings/shared";
import f from "./settings/forms.module.css";

type RuleList = Schemas["RuleList"];
type Editor = { mode: "create"; initial: RuleDraft; key: number } | { mode: "edit"; rule: Rule; key: number };

export default function RulesPage() {
  const { orgId, can } = useOrg();
  const admin = can("admin");
  const queryClient = useQueryClient();
  const [searchParams, setSearchParams] = useSearchParams();
  const queryKey = ["org", orgId, "rules"];
  const rules = useQuery({
    queryKey,
    queryFn: ({ signal }) => apiFetch<RuleList>(`/api/orgs/${orgId}/rules`, { signal }),
  });

  // The create form pre-filled from ?new=1&… (a recommendation's "Create a rule").
  const [editor, setEditor] = useState<Editor | null>(() => {
    const draft = admin ? draftFromQuery(searchParams) : null;
    return draft ? { mode: "create", initial: draft, key: 0 } : null;
  });
  const editorKey = useRef(1);
  useEffect(() => {
    if (searchParams.get("new") === null) return;
    const next = new URLSearchParams(searchParams);
    PREFILL_KEYS.forEach((k) => next.delete(k));
    setSearchParams(next, { replace: true });
  }, [searchParams, setSearchParams]);

  const [notice, setNotice] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);

  const setRules = (list: Rule[]) =>
    queryClient.setQueryData<RuleList>(queryKey, (old) => ({ ...old, rules: list }));

  const reorder = useMutation({
    mutationFn: (ids: string[]) =>
      apiFetch<Schemas["RulesReordered"]>(`/api/orgs/${orgId}/rules/order`, {
        method: "PUT",
        body: { ids },
      }),
    onMutate: async (ids) => {
      setActionError(null);
      await queryClient.cancelQueries({ queryKey });
      const previous = queryClient.getQueryData<RuleList>(queryKey);
      if (previous) {
        const byId = new Map(previous.rules.map((r) => [r.id, r]));
        const next = ids
          .map((id) => byId.get(id))
          .filter((r): r is Rule => r !== undefined)
          .map((r, i) => ({ ...r, priority: i + 1 }));
        setRules(next);
      }
      return { previous };
    },
    onError: (error, _ids, context) => {
      if (context?.previous) queryClient.setQueryData(queryKey, context.previous);
      setActionError(`The new order was not saved: ${errorMessage(error)}`);
    },
    onSuccess: (answer) => {
      setRules(answer.rules);
      if (answer.proxies) setNotice(`Order saved; ${answer.proxies}`);
    },
    onSettled: () => queryClient.invalidateQueries({ queryKey }),
  });

  const toggle = useMutation({
    mutationFn: (v: { rule: Rule; enabled: boolean }) =>
      apiFetch<Schemas["RuleChanged"]>(`/api/orgs/${orgId}/rules/${v.rule.id}`, {
        method: "PATCH",
        body: { enabled: v.enabled },
      }),
    onMutate: async ({ rule, enabled }) => {
      setActionError(null);
      await queryClient.cancelQueries({ queryKey });
      const previous = queryClient.getQueryData<RuleList>(queryKey);
      if (previous) setRules(previous.rules.map((r) => (r.id === rule.id ? { ...r, enabled } : r)));
      return { previous };
    },
    onError: (error, v, context) => {
      if (context?.previous) queryClient.setQueryData(queryKey, context.previous);
      setActionError(`${v.rule.name} was not ${v.enabled ? "enabled" : "disabled"}: ${errorMessage(error)}`);
    },
    onSettled: () => queryClient.invalidateQueries({ queryKey }),
  });

  const remove = useMutation({
    mutationFn: (rule: Rule) =>
      apiFetch<Schemas["RuleDeleted"]>(`/api/orgs/${orgId}/rules/${rule.id}`, { method: "DELETE" }),
    onMutate: () => setActionError(null),
    onSuccess: (answer, rule) => {
      setNotice(`Rule ${rule.name} deleted.${answer.proxies ? ` ${answer.proxies}` : ""}`);
      if (editor?.mode === "edit" && editor.rule.id === rule.id) setEditor(null);
    },
    onError: (error, rule) => setActionError(`${rule.name} was not deleted: ${errorMessage(error)}`),
    onSettled: () => queryClient.invalidateQueries({ queryKey }),
  });

  // Drag and drop (native HTML5): the dragged rule's id, and the row it is over.
  const [dragId, setDragId] = useState<string | null>(null);
  const [overId, setOverId] = useState<string | null>(null);

  const list = rules.data?.rules ?? [];

  function move(from: number, to: number) {
    // One reorder at a time: each sends the whole order, built from the list shown.
    if (reorder.isPending || to < 0 || to >= list.length || from === to) return;
    reorder.mutate(moved(list, from, to).map((r) => r.id));
  }

  function onDrop(event: DragEvent, targetId: string) {
    event.preventDefault();
    const sourceId = dragId ?? event.dataTransfer.getData("text/plain");
    setDragId(null);
    setOverId(null);
    if (!sourceId || sourceId === targetId) return;
    const from = list.findIndex((r) => r.id === sourceId);
    const to = list.findIndex((r) => r.id === targetId);
    if (from < 0 || to < 0) return;
    move(from, to);
  }

  function openCreate() {
    setNotice(null);
    setEditor({ mode: "create", initial: EMPTY_DRAFT, key: editorKey.current++ });
  }

  function openEdit(rule: Rule) {
    setNotice(null);
    setEditor({ mode: "edit", rule, key: editorKey.current++ });
  }

  return (
    <div>
      <PageHeader
        title="Rules"
        actions={
          admin && editor?.mode !== "create" ? (
            <button type="button" className="button button-primary" onClick={openCreate}>
              New rule
            </button>
          ) : undefined
        }
      />
      <p className={`muted ${f.intro}`}>
        Proxies try the enabled rules in this order; the first whose conditions all match
        a request rewrites its provider and / or model. Empty conditions match anything.
      </p>

      {notice && (
        <p className={f.success} role="status">
          {notice}
        </p>
      )}
      {actionError && (
        <p className={f.formError} role="alert">
          {actionError}
        </p>
      )}

      {admin && editor && (
        <RuleForm
          key={editor.key}
          orgId={orgId}
          editing={editor.mode === "edit" ? editor.rule : null}
          initial={editor.mode === "edit" ? draftFromRule(editor.rule) : editor.initial}
          onSaved={(rule) => {
            setEditor(null);
            setNotice(
              `Rule ${rule.name} ${editor.mode === "edit" ? "saved" : "created"}.${rule.proxies ? ` ${rule.proxies}` : ""}`,
            );
          }}
          onCancel={() => setEditor(null)}
        />
      )}

      {rules.isPending ? (
        <Loading label="Loading rules" />
      ) : rules.isError ? (
        <ErrorState error={rules.error} onRetry={() => void rules.refetch()} />
      ) : list.length === 0 ? (
        <EmptyState title="No routing rules yet">
          <p>
            Rules send matching requests to another model or provider, for example a
            cheaper model for one feature.{" "}
            {admin
              ? "Create one with New rule, or from a recommendation."
              : "An admin of this organisation can create them."}
          </p>
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table className={`table ${f.dataTable}`}>
            <caption className="sr-only">Routing rules in priority order</caption>
            <thead>
              <tr>
                {admin && (
                  <th scope="col" className={f.dragCol}>
                    <span className="sr-only">Drag to reorder</span>
                  </th>
                )}
                <th scope="col" className="num">
                  Priority
                </th>
                <th scope="col">Name</th>
                <th scope="col">Enabled</th>
                <th scope="col">Matches</th>
                <th scope="col">Target</th>
                {admin && (
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {list.map((rule, index) => (
                <tr
                  key={rule.id}
                  data-rule-id={rule.id}
                  className={[
                    dragId === rule.id ? "dragging" : "",
                    overId === rule.id && dragId !== rule.id ? "drop-target" : "",
                    rule.enabled ? "" : f.disabledRow,
                  ]
                    .filter(Boolean)
                    .join(" ") || undefined}
                  draggable={admin ? true : undefined}
                  onDragStart={
                    admin
                      ? (e) => {
                          setDragId(rule.id);
                          e.dataTransfer.effectAllowed = "move";
                          e.dataTransfer.setData("text/plain", rule.id);
                        }
                      : undefined
                  }
                  onDragOver={
                    admin
                      ? (e) => {
                          e.preventDefault();
                          e.dataTransfer.dropEffect = "move";
                          if (overId !== rule.id) setOverId(rule.id);
                        }
                      : undefined
                  }
                  onDragLeave={admin ? () => setOverId((o) => (o === rule.id ? null : o)) : undefined}
                  onDrop={admin ? (e) => onDrop(e, rule.id) : undefined}
                  onDragEnd={
                    admin
                      ? () => {
                          setDragId(null);
                          setOverId(null);
                        }
                      : undefined
                  }
                >
                  {admin && (
                    <td className={f.dragCol} aria-hidden="true" title="Drag to reorder">
                      <span className={f.dragHandle}>⠿</span>
                    </td>
                  )}
                  <td className="num">{rule.priority}</td>
                  <th scope="row">{rule.name}</th>
                  <td>
                    {admin ? (
                      <label className={f.switch}>
                        <input
                          type="checkbox"
                          role="switch"
                          checked={rule.enabled}
                          aria-label={`Turn ${rule.name} ${rule.enabled ? "off" : "on"}`}
                          onChange={(e) => toggle.mutate({ rule, enabled: e.target.checked })}
                        />
                        <span>{rule.enabled ? "On" : "Off"}</span>
                      </label>
                    ) : (
                      <span className={`badge ${rule.enabled ? "badge-good" : "badge-neutral"}`}>
                        {rule.enabled ? "On" : "Off"}
                      </span>
                    )}
                  </td>
                  <td className="wrap">{describeMatch(rule)}</td>
                  <td className="wrap">{describeTarget(rule)}</td>
                  {admin && (
                    <td>
                      <div className={f.rowActions}>
                        <button
                          type="button"
                          className={`button button-small ${f.iconButton}`}
                          aria-label="Move up"
                          title="Move up"
                          disabled={index === 0 || reorder.isPending}
                          onClick={() => move(index, index - 1)}
                        >
                          <span aria-hidden="true">↑</span>
                        </button>
                        <button
                          type="button"
                          className={`button button-small ${f.iconButton}`}
                          aria-label="Move down"
                          title="Move down"
                          disabled={index === list.length - 1 || reorder.isPending}
                          onClick={() => move(index, index + 1)}
                        >
                          <span aria-hidden="true">↓</span>
                        </button>
                        <button type="button" className="button button-small" onClick={() => openEdit(rule)}>
                          Edit
                        </button>
                        <ConfirmButton
                          label="Delete"
                          question={`Delete rule ${rule.name}?`}
                          confirmLabel="Yes, delete"
                          pending={remove.isPending && remove.variables?.id === rule.id}
                          onConfirm={() => remove.mutate(rule)}
                        />
                      </div>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
