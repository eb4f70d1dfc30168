import {
  flexRender,
  getCoreRowModel,
  getExpandedRowModel,
  useReactTable,
  type ColumnDef,
  type ExpandedState,
} from "@tanstack/react-table";
import { Fragment, useState, type ReactNode } from "react";

/**
 * A TanStack table in a horizontally scrolling container (tables keep working on a phone).
 * With `renderExpanded`, each row gets a "Details" toggle and shows that below it.
 */
export function DataTable<T>({
  data,
  columns,
  caption,
  getRowId,
  renderExpanded,
  emptyText = "Nothing to show.",
  className,
}: {
  data: T[];
  // The value type differs per column (TanStack's own examples use `any` here).
  columns: ColumnDef<T, any>[];
  caption?: string;
  getRowId?: (row: T, index: number) => string;
  renderExpanded?: (row: T) => ReactNode;
  emptyText?: string;
  className?: string;
}) {
  const [expanded, setExpanded] = useState<ExpandedState>({});
  const table = useReactTable({
    data,
    columns,
    getRowId,
    state: { expanded },
    onExpandedChange: setExpanded,
    getRowCanExpand: () => Boolean(renderExpanded),
    getCoreRowModel: getCoreRowModel(),
    getExpandedRowModel: getExpandedRowModel(),
  });
  const width = table.getVisibleLeafColumns().length + (renderExpanded ? 1 : 0);
  return (
    <div className={`table-wrap ${className ?? ""}`}>
      <table className="table">
        {caption && <caption className="sr-only">{caption}</caption>}
        <thead>
          {table.getHeaderGroups().map((group) => (
            <tr key={group.id}>
              {renderExpanded && (
                <th scope="col" className="col-toggle">
                  <span className="sr-only">Details</span>
                </th>
              )}
              {group.headers.map((header) => (
                <th
                  key={header.id}
                  scope="col"
                  className={(header.column.columnDef.meta as { className?: string } | undefined)?.className}
                >
                  {header.isPlaceholder
                    ? null
                    : flexRender(header.column.columnDef.header, header.getContext())}
                </th>
              ))}
            </tr>
          ))}
        </thead>
        <tbody>
          {table.getRowModel().rows.length === 0 && (
            <tr>
              <td colSpan={width} className="table-empty">
                {emptyText}
              </td>
            </tr>
          )}
          {table.getRowModel().rows.map((row) => (
            <Fragment key={row.id}>
              <tr className={row.getIsExpanded() ? "row-expanded" : undefined}>
                {renderExpanded && (
                  <td className="col-toggle">
                    <button
                      type="button"
                      className="toggle"
                      aria-expanded={row.getIsExpanded()}
                      aria-label={row.getIsExpanded() ? "Hide details" : "Show details"}
                      onClick={row.getToggleExpandedHandler()}
                    >
                      <span aria-hidden="true">{row.getIsExpanded() ? "▾" : "▸"}</span>
                    </button>
                  </td>
                )}
                {row.getVisibleCells().map((cell) => (
                  <td
                    key={cell.id}
                    className={(cell.column.columnDef.meta as { className?: string } | undefined)?.className}
                  >
                    {flexRender(cell.column.columnDef.cell, cell.getContext())}
                  </td>
                ))}
              </tr>
              {renderExpanded && row.getIsExpanded() && (
                <tr className="row-details">
                  <td colSpan={width}>
                    {/* As wide as the visible part of the table, not the scrolled width. */}
                    <div className="row-details-inner">{renderExpanded(row.original)}</div>
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>
    </div>
  );
}
